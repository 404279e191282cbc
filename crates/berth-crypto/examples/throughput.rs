//! Segmented encryption and decryption speed on this machine, streaming as berth does (1 MiB
//! chunks in, each chunk's output handed on and its buffer reused):
//! `cargo run --release -p berth-crypto --example throughput [MiB] [layers]`.

use std::time::Instant;

use berth_crypto::segmented::{Decryptor, Encryptor, Header, SegmentCipher};

const CHUNK: usize = 1 << 20;

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let layers: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let plain = vec![0x5au8; CHUNK];
    let keys: Vec<_> = (0..layers).map(|_| berth_crypto::random_key()).collect();
    let key_refs: Vec<&[u8; 32]> = keys.iter().map(|k| &**k).collect();
    let header = Header::new(b"ref", vec![vec![0u8; 60]; layers]).expect("header");

    // Encrypt `mib` MiB; keep the stored form of the first MiB-and-a-bit to decrypt repeatedly.
    let started = Instant::now();
    let mut enc = Encryptor::new(SegmentCipher::new(&header, &key_refs).expect("cipher"));
    let mut out = Vec::with_capacity(CHUNK + 4096);
    let mut sample = Vec::new();
    for i in 0..mib {
        out.clear();
        enc.update(&plain, &mut out).expect("update");
        if i == 0 {
            sample = out.clone();
        }
    }
    out.clear();
    enc.finish(b"aad", &mut out).expect("finish");
    let enc_s = started.elapsed().as_secs_f64();

    // Decrypt the first MiB's segments `mib` times over (every segment a middle one).
    let started = Instant::now();
    let mut plain_out = Vec::with_capacity(CHUNK + 4096);
    let plain_len = (mib as u64 + 1) * CHUNK as u64;
    for _ in 0..mib {
        let cipher = SegmentCipher::new(&header, &key_refs).expect("cipher");
        let mut dec = Decryptor::new(&header, cipher, b"aad", plain_len, 0);
        plain_out.clear();
        dec.update(&sample, &mut plain_out).expect("update");
        assert_eq!(plain_out.len(), sample.len() / (65536 + 16 * layers) * 65536);
    }
    let dec_s = started.elapsed().as_secs_f64();
    println!("{mib} MiB, {layers} layer(s): encrypt {:.0} MiB/s, decrypt {:.0} MiB/s", mib as f64 / enc_s, mib as f64 / dec_s);
}
