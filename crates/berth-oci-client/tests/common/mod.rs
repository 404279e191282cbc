//! A real CNCF distribution registry (`/usr/bin/docker-registry`) on a free loopback port.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_oci_client::{ClientOptions, Credentials, Endpoint, OciClient};
use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

pub struct Distribution {
    child: Child,
    _dir: tempfile::TempDir,
    pub base: url::Url,
}

impl Distribution {
    pub async fn start() -> Distribution {
        assert!(
            std::path::Path::new(DOCKER_REGISTRY).exists(),
            "{DOCKER_REGISTRY} is missing: scripts/install-test-deps.sh installs the docker-registry package"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config: PathBuf = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let base = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let mut d = Distribution { child, _dir: dir, base };
        d.wait_ready().await;
        d
    }

    /// Polls `GET /v2/` until the registry answers (readiness, not a fixed sleep).
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let url = self.base.join("v2/").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = http.get(url.clone()).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited early: {status}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn client(&self) -> OciClient {
        OciClient::new(
            Endpoint { base: self.base.clone(), credentials: Credentials::Anonymous, allow_insecure: true },
            ClientOptions::default(),
        )
        .unwrap()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Deterministic pseudo-random bytes (xorshift), generated chunk by chunk.
pub fn blob_chunks(seed: u64, size: usize, chunk: usize) -> impl Iterator<Item = Bytes> {
    let mut state = seed | 1;
    let mut left = size;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(chunk);
        left -= n;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes()[..(n - out.len()).min(8)]);
        }
        Some(Bytes::from(out))
    })
}

pub fn blob_digest(seed: u64, size: usize) -> String {
    let mut h = Sha256::new();
    for c in blob_chunks(seed, size, 64 * 1024) {
        h.update(&c);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

pub fn blob_stream(seed: u64, size: usize) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::iter(blob_chunks(seed, size, 64 * 1024).map(Ok))
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
