//! Segmented encryption and decryption speed on this machine:
//! `cargo run --release -p berth-crypto --example throughput [MiB]`.

use std::time::Instant;

use berth_crypto::segmented::{Decryptor, Encryptor, Header};

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let plain = vec![0x5au8; mib << 20];
    let key = berth_crypto::random_key();
    let started = Instant::now();
    let (mut enc, mut stored) = Encryptor::new(&key, b"ref", &[0u8; 60], b"aad").expect("encryptor");
    stored.reserve(plain.len() + plain.len() / 4096 + 1024);
    for chunk in plain.chunks(1 << 20) {
        enc.update(chunk, &mut stored).expect("update");
    }
    enc.finish(&mut stored).expect("finish");
    let enc_s = started.elapsed().as_secs_f64();
    let header = Header::parse(&stored).expect("header");
    let started = Instant::now();
    let mut dec = Decryptor::new(&header, &key, b"aad", plain.len() as u64, 0);
    let mut out = Vec::with_capacity(plain.len());
    for chunk in stored[header.len as usize..].chunks(1 << 20) {
        dec.update(chunk, &mut out).expect("update");
    }
    dec.finish(&mut out).expect("finish");
    let dec_s = started.elapsed().as_secs_f64();
    assert_eq!(out, plain);
    println!("{mib} MiB: encrypt {:.0} MiB/s, decrypt {:.0} MiB/s", mib as f64 / enc_s, mib as f64 / dec_s);
}
