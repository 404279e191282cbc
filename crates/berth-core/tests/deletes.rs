//! Deleting images never breaks a multi-arch index: the service refuses to delete a manifest an
//! index of the repository lists (ECR's ImageReferencedByManifestList), on every backend.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use berth_core::images::ImageId;
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, Tag};
use berth_store::TagStatus;

mod common;
use bytes::Bytes;
use common::{push_blob, FakeClock};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Env {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    repo: Repo,
    layer: Digest,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
        let (meta, blobs) = common::stores(dir.path()).await;
        let registry = Arc::new(Registry::new(meta, blobs, clock, RegistryConfig::default()).with_key_service(common::root_key()));
        let repo = Repo::new(
            &RegistryRef { account: "123456789012".into(), region: "us-east-1".into() },
            RepositoryName::parse("team/multi").unwrap(),
        );
        let layer = push_blob(&registry, &repo, b"layer").await;
        Env { _dir: dir, registry, repo, layer }
    }

    /// A platform image (distinct by `arch`), pushed by digest and tagged with `tags`.
    async fn platform(&self, arch: &str, tags: &[&str]) -> Digest {
        let data = format!("{{\"architecture\":\"{arch}\"}}");
        let config = push_blob(&self.registry, &self.repo, data.as_bytes()).await;
        let config_size = data.len();
        let body = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":5}}]}}"#,
            self.layer
        ));
        self.put(body, OCI_MANIFEST, tags).await.unwrap()
    }

    /// An index of `children` (pushed already: each descriptor declares its child's length).
    async fn index_body(&self, children: &[&Digest]) -> Bytes {
        let mut entries = Vec::new();
        for (i, d) in children.iter().enumerate() {
            let child = self.registry.get_manifest(&self.repo, &Reference::Digest((*d).clone()), false).await.unwrap();
            let (size, media_type) = (child.content.len(), child.media_type);
            entries.push(format!(
                r#"{{"mediaType":"{media_type}","digest":"{d}","size":{size},"platform":{{"architecture":"arch{i}","os":"linux"}}}}"#
            ));
        }
        Bytes::from(format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#, entries.join(",")))
    }

    async fn put(&self, body: Bytes, media_type: &str, tags: &[&str]) -> Result<Digest, RegistryError> {
        let digest = Digest::sha256_of(&body);
        self.registry.put_manifest(&self.repo, &Reference::Digest(digest.clone()), media_type, body.clone()).await?;
        for t in tags {
            self.registry.put_manifest(&self.repo, &Reference::Tag(Tag::parse(t).unwrap()), media_type, body.clone()).await?;
        }
        Ok(digest)
    }

    async fn exists(&self, d: &Digest) -> bool {
        self.registry.get_manifest(&self.repo, &Reference::Digest(d.clone()), false).await.is_ok()
    }

    async fn untagged(&self) -> Vec<ImageId> {
        let ids = self.registry.image_ids(&self.repo, TagStatus::Untagged, None, None, 1000).await.unwrap();
        ids.into_iter().map(|(d, _)| ImageId { digest: Some(d.to_string()), tag: None }).collect()
    }
}

fn by_digest(d: &Digest) -> ImageId {
    ImageId { digest: Some(d.to_string()), tag: None }
}

#[tokio::test]
async fn batch_delete_of_an_index_child_is_refused_and_names_the_index() {
    let env = Env::new().await;
    let (amd, arm) = (env.platform("amd64", &[]).await, env.platform("arm64", &[]).await);
    let index = env.put(env.index_body(&[&amd, &arm]).await, OCI_INDEX, &["v1"]).await.unwrap();

    // The usual cleanup: every untagged image (both platforms), without the index.
    let (deleted, failures) = env.registry.batch_delete_images(&env.repo, &env.untagged().await).await.unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    assert_eq!(failures.len(), 2);
    for f in &failures {
        assert_eq!(f.code, "ImageReferencedByManifestList");
        assert!(f.reason.starts_with("Requested image referenced by manifest list"), "{}", f.reason);
        assert!(f.reason.contains(&index.to_string()), "{}", f.reason);
    }
    assert!(env.exists(&amd).await && env.exists(&arm).await && env.exists(&index).await);
    assert_eq!(env.registry.indexes_listing(&env.repo, &amd).await.unwrap(), vec![index.clone()]);
}

#[tokio::test]
async fn an_index_deleted_in_the_same_request_goes_first_whatever_the_order() {
    let env = Env::new().await;
    let (amd, arm) = (env.platform("amd64", &[]).await, env.platform("arm64", &[]).await);
    let index = env.put(env.index_body(&[&amd, &arm]).await, OCI_INDEX, &[]).await.unwrap();
    // An index of the index: two levels to unwind.
    let outer = env.put(env.index_body(&[&index]).await, OCI_INDEX, &[]).await.unwrap();
    let loose = env.platform("loose", &[]).await;
    let mut ids = env.untagged().await;
    ids.sort_by_key(|i| {
        let d = i.digest.clone().unwrap_or_default();
        // Children before their indexes: the order that would fail if taken as given.
        [amd.to_string(), arm.to_string(), index.to_string(), outer.to_string(), loose.to_string()].iter().position(|x| *x == d)
    });
    assert_eq!(ids.len(), 5);
    let (deleted, failures) = env.registry.batch_delete_images(&env.repo, &ids).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let mut gone: Vec<String> = deleted.iter().filter_map(|i| i.digest.clone()).collect();
    gone.sort();
    let mut want: Vec<String> = [&amd, &arm, &index, &outer, &loose].iter().map(|d| d.to_string()).collect();
    want.sort();
    assert_eq!(gone, want);
    assert!(env.registry.images(&env.repo, TagStatus::Any, None, None, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn v2_delete_by_digest_is_refused_and_by_tag_untags_only() {
    let env = Env::new().await;
    let amd = env.platform("amd64", &["amd64-only"]).await;
    let arm = env.platform("arm64", &[]).await;
    let index = env.put(env.index_body(&[&amd, &arm]).await, OCI_INDEX, &["v1"]).await.unwrap();

    let err = env.registry.delete_manifest(&env.repo, &Reference::Digest(amd.clone())).await.unwrap_err();
    match err {
        RegistryError::ImageReferencedByIndex { image, index: by } => assert_eq!((image, by), (amd.clone(), index.clone())),
        other => panic!("{other:?}"),
    }
    assert!(env.exists(&amd).await, "the child and its tag stay");
    let tagged = env.registry.get_manifest(&env.repo, &Reference::Tag(Tag::parse("amd64-only").unwrap()), false).await.unwrap();
    assert_eq!(tagged.digest, amd);

    // Deleting the tag works and keeps the image the index lists.
    env.registry.delete_manifest(&env.repo, &Reference::Tag(Tag::parse("amd64-only").unwrap())).await.unwrap();
    assert!(env.exists(&amd).await);
    assert_eq!(env.registry.list_tags(&env.repo, None, None).await.unwrap().items, vec!["v1".to_string()]);

    // Once the index is gone its children may go.
    env.registry.delete_manifest(&env.repo, &Reference::Digest(index.clone())).await.unwrap();
    env.registry.delete_manifest(&env.repo, &Reference::Digest(amd.clone())).await.unwrap();
    assert!(!env.exists(&amd).await && env.exists(&arm).await);
}

#[tokio::test]
async fn batch_delete_of_a_childs_last_tag_untags_and_keeps_the_image() {
    let env = Env::new().await;
    let amd = env.platform("amd64", &["amd64-only"]).await;
    let index = env.put(env.index_body(&[&amd]).await, OCI_INDEX, &["v1"]).await.unwrap();
    let ids = [ImageId { digest: None, tag: Some("amd64-only".into()) }];
    let (deleted, failures) = env.registry.batch_delete_images(&env.repo, &ids).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(deleted.len(), 1);
    assert_eq!((deleted[0].digest.clone(), deleted[0].tag.clone()), (Some(amd.to_string()), Some("amd64-only".to_string())));
    assert!(env.exists(&amd).await && env.exists(&index).await);

    // With the index in the same request, the untagged child goes too.
    env.registry
        .put_manifest(&env.repo, &Reference::Tag(Tag::parse("again").unwrap()), OCI_MANIFEST, {
            env.registry.get_manifest(&env.repo, &Reference::Digest(amd.clone()), false).await.unwrap().content
        })
        .await
        .unwrap();
    let ids = [ImageId { digest: None, tag: Some("again".into()) }, by_digest(&index)];
    let (_, failures) = env.registry.batch_delete_images(&env.repo, &ids).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(!env.exists(&amd).await && !env.exists(&index).await);
}

/// An index push and a delete of its child race: either the index lands and the child stays, or
/// the delete wins and the push is refused. Never an index without its child.
#[tokio::test]
async fn a_racing_index_push_and_child_delete_never_leave_a_broken_index() {
    let env = Arc::new(Env::new().await);
    for round in 0..12 {
        let child = env.platform(&format!("race{round}"), &[]).await;
        let body = env.index_body(&[&child]).await;
        let (e1, e2) = (env.clone(), env.clone());
        let c2 = child.clone();
        let push = tokio::spawn(async move { e1.put(body, OCI_INDEX, &[]).await });
        let delete = tokio::spawn(async move { e2.registry.batch_delete_images(&e2.repo, &[by_digest(&c2)]).await.unwrap() });
        let (pushed, (deleted, failures)) = (push.await.unwrap(), delete.await.unwrap());
        match pushed {
            Ok(index) => {
                assert!(env.exists(&index).await);
                assert!(env.exists(&child).await, "round {round}: the index lost its child");
                assert!(deleted.is_empty());
                assert_eq!(failures[0].code, "ImageReferencedByManifestList");
            }
            Err(RegistryError::ManifestChildUnknown(d)) => {
                assert_eq!(d, child);
                assert_eq!(deleted.len(), 1);
                assert!(!env.exists(&child).await);
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}
