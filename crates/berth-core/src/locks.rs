//! Striped per-digest locks: a blob commit and the garbage collector's
//! delete of the same digest never interleave (rename vs unlink).

use std::hash::{DefaultHasher, Hash, Hasher};

use berth_store::Digest;
use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 256;

pub(crate) struct DigestLocks {
    stripes: Vec<Mutex<()>>,
}

impl DigestLocks {
    pub(crate) fn new() -> Self {
        DigestLocks { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }

    pub(crate) async fn lock(&self, digest: &Digest) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        digest.hash(&mut h);
        self.stripes[(h.finish() as usize) % STRIPES].lock().await
    }
}
