//! Segmented encryption and decryption speed on this machine:
//! `cargo run --release -p berth-crypto --example throughput [MiB] [layers]`.

use std::time::Instant;

use berth_crypto::segmented::{Decryptor, Encryptor, Header, SegmentCipher};

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let layers: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let plain = vec![0x5au8; mib << 20];
    let keys: Vec<_> = (0..layers).map(|_| berth_crypto::random_key()).collect();
    let key_refs: Vec<&[u8; 32]> = keys.iter().map(|k| &**k).collect();
    let header = Header::new(b"ref", vec![vec![0u8; 60]; layers]).expect("header");
    let started = Instant::now();
    let mut stored = header.encode();
    stored.reserve(plain.len() + plain.len() / 2048 + 1024);
    let mut enc = Encryptor::new(SegmentCipher::new(&header, &key_refs).expect("cipher"));
    for chunk in plain.chunks(1 << 20) {
        enc.update(chunk, &mut stored).expect("update");
    }
    enc.finish(b"aad", &mut stored).expect("finish");
    let enc_s = started.elapsed().as_secs_f64();
    let header = Header::parse(&stored).expect("header");
    let started = Instant::now();
    let cipher = SegmentCipher::new(&header, &key_refs).expect("cipher");
    let mut dec = Decryptor::new(&header, cipher, b"aad", plain.len() as u64, 0);
    let mut out = Vec::with_capacity(plain.len());
    for chunk in stored[header.len as usize..].chunks(1 << 20) {
        dec.update(chunk, &mut out).expect("update");
    }
    dec.finish(&mut out).expect("finish");
    let dec_s = started.elapsed().as_secs_f64();
    assert_eq!(out, plain);
    println!("{mib} MiB, {layers} layer(s): encrypt {:.0} MiB/s, decrypt {:.0} MiB/s", mib as f64 / enc_s, mib as f64 / dec_s);
}
