//! Service-level tests, with an injected clock, on the backends `common` selects.

use berth_core::{Digest, GcOptions, Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName};

mod common;
use bytes::Bytes;

use futures::StreamExt;

use common::Env;

impl Env {
    /// A registry over the env's directory; calling it again simulates a restart.
    async fn registry(&self) -> Registry {
        self.registry_with(RegistryConfig { gc_grace_millis: 60_000, ..Default::default() }).await
    }
}

fn stream(data: &[u8]) -> berth_core::BlobStream {
    let chunks: Vec<std::io::Result<Bytes>> = data.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

fn repo(s: &str) -> Repo {
    Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse(s).unwrap())
}

async fn read_all(r: &Registry, name: &Repo, d: &Digest) -> Vec<u8> {
    let (_, _, mut reader) = r.read_blob(name, d, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = reader.body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn image_manifest(config: &Digest, layer: &Digest) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]}}"#
    ))
}

#[tokio::test]
async fn chunked_upload_resumes_after_restart_and_verifies_digest() {
    let env = Env::new();
    let name = repo("team/app");
    let data = b"hello, durable world";
    let digest = Digest::sha256_of(data);
    let id = {
        let r = env.registry().await;
        let s = r.start_upload(&name).await.unwrap();
        let st = r.append_upload(&name, &s.id, Some(0), stream(&data[..10])).await.unwrap();
        assert_eq!(st.offset, 10);
        s.id
    };
    // New process: the hash state is rebuilt from the stored bytes.
    let r = env.registry().await;
    assert_eq!(r.upload_status(&name, &id).await.unwrap().offset, 10);
    let err = r.append_upload(&name, &id, Some(5), stream(b"x")).await.unwrap_err();
    assert!(matches!(err, RegistryError::UploadRangeInvalid { requested: 5, current: 10 }));
    r.append_upload(&name, &id, Some(10), stream(&data[10..])).await.unwrap();
    let got = r.complete_upload(&name, &id, &digest, None, None).await.unwrap();
    assert_eq!(got, digest);
    assert_eq!(read_all(&r, &name, &digest).await, data);
    // Another repository cannot read it, though the bytes are stored once.
    assert!(matches!(r.stat_blob(&repo("team/other"), &digest).await, Err(RegistryError::NameUnknown(_))));
}

#[tokio::test]
async fn wrong_digest_stores_nothing() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let wrong = Digest::sha256_of(b"something else");
    let err = r.upload_blob(&name, &wrong, stream(b"actual bytes")).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestInvalid(_)));
    assert!(matches!(r.stat_blob(&name, &wrong).await, Err(RegistryError::BlobUnknown(_))));
    assert_eq!(r.open_upload_sessions().await.unwrap(), 0);
    if common::blobs_on_disk() {
        assert!(std::fs::read_dir(env.dir.path().join("blobs/sha256")).unwrap().next().is_none());
    }
}

#[tokio::test]
async fn sha512_uploads() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let d = Digest::of(berth_store::Algorithm::Sha512, b"five!");
    if common::blobs_on_disk() {
        assert_eq!(r.upload_blob(&name, &d, stream(b"five!")).await.unwrap(), d);
        assert_eq!(r.stat_blob(&name, &d).await.unwrap(), 5);
    } else {
        // Uploads are hashed with sha256 as they stream; a sha512 digest needs the bytes read
        // back, which S3 multipart parts cannot be before completion. Refused, nothing stored.
        let err = r.upload_blob(&name, &d, stream(b"five!")).await.unwrap_err();
        assert!(matches!(&err, RegistryError::DigestInvalid(m) if m.contains("sha512")), "{err:?}");
        assert!(matches!(r.stat_blob(&name, &d).await, Err(RegistryError::BlobUnknown(_))));
        assert_eq!(r.open_upload_sessions().await.unwrap(), 0);
    }
}

#[tokio::test]
async fn manifest_needs_its_blobs_in_the_repository_and_tags_move_atomically() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"layer");
    r.upload_blob(&name, &config, stream(b"{}")).await.unwrap();
    let m = image_manifest(&config, &layer);
    let tag = Reference::parse("v1").unwrap();
    let err = r.put_manifest(&name, &tag, "", m.clone()).await.unwrap_err();
    assert!(matches!(err, RegistryError::ManifestBlobUnknown(d) if d == layer));
    assert!(matches!(r.get_manifest(&name, &tag, true).await, Err(RegistryError::ManifestUnknown(_))));
    // A blob in another repository does not count.
    r.upload_blob(&repo("team/other"), &layer, stream(b"layer")).await.unwrap();
    assert!(r.put_manifest(&name, &tag, "", m.clone()).await.is_err());
    r.upload_blob(&name, &layer, stream(b"layer")).await.unwrap();
    let put = r.put_manifest(&name, &tag, "", m.clone()).await.unwrap();
    let got = r.get_manifest(&name, &tag, true).await.unwrap();
    assert_eq!(got.content, m);
    assert_eq!(got.digest, put.digest);
    // Referenced blobs cannot be deleted out from under the manifest: refused, still readable.
    assert_eq!(r.delete_blob(&name, &layer).await.unwrap(), berth_core::BlobDeletion::Referenced);
    assert_eq!(read_all(&r, &name, &layer).await, b"layer");
    // Deleting by digest removes the tag too.
    r.delete_manifest(&name, &Reference::Digest(put.digest.clone())).await.unwrap();
    assert!(r.list_tags(&name, None, None).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn gc_collects_only_old_unreferenced_blobs() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"layer");
    let garbage = Digest::sha256_of(b"garbage");
    for (d, b) in [(&config, &b"{}"[..]), (&layer, b"layer"), (&garbage, b"garbage")] {
        r.upload_blob(&name, d, stream(b)).await.unwrap();
    }
    r.put_manifest(&name, &Reference::parse("v1").unwrap(), "", image_manifest(&config, &layer)).await.unwrap();
    let young = r.collect_garbage(GcOptions { dry_run: false, grace_millis: None }).await.unwrap();
    assert_eq!(young.blobs_deleted, 0, "within the grace window nothing goes");
    env.advance(61_000);
    let dry = r.collect_garbage(GcOptions { dry_run: true, grace_millis: None }).await.unwrap();
    assert_eq!((dry.blobs_deleted, dry.bytes_reclaimed), (1, 7));
    // (A HEAD would keep the blob alive for another grace period, so ask the blob store.)
    let blobs = common::blob_store(env.dir.path()).await;
    assert!(common::stored_size(&blobs, &garbage).await.is_some(), "dry run deletes nothing");
    let real = r.collect_garbage(GcOptions { dry_run: false, grace_millis: None }).await.unwrap();
    assert_eq!(real.blobs, vec![garbage.to_string()]);
    assert_eq!(common::stored_size(&blobs, &garbage).await, None);
    assert!(matches!(r.stat_blob(&name, &garbage).await, Err(RegistryError::BlobUnknown(_))));
    assert_eq!(read_all(&r, &name, &layer).await, b"layer");
    assert!(r.fsck().await.unwrap().ok());
}

#[tokio::test]
async fn gc_removes_abandoned_uploads_but_not_fresh_ones() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let old = r.start_upload(&name).await.unwrap();
    env.advance(61_000);
    let fresh = r.start_upload(&name).await.unwrap();
    let report = r.collect_garbage(GcOptions { dry_run: false, grace_millis: None }).await.unwrap();
    assert_eq!(report.uploads_deleted, 1);
    assert!(matches!(r.upload_status(&name, &old.id).await, Err(RegistryError::BlobUploadUnknown)));
    assert_eq!(r.upload_status(&name, &fresh.id).await.unwrap().offset, 0);
}

#[tokio::test]
async fn a_tag_read_through_the_cache_follows_moves_and_deletes() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let config = Digest::sha256_of(b"{}");
    let (l1, l2) = (Digest::sha256_of(b"layer"), Digest::sha256_of(b"other"));
    for (d, b) in [(&config, &b"{}"[..]), (&l1, b"layer"), (&l2, b"other")] {
        r.upload_blob(&name, d, stream(b)).await.unwrap();
    }
    let tag = Reference::parse("v1").unwrap();
    let first = r.put_manifest(&name, &tag, "", image_manifest(&config, &l1)).await.unwrap();
    // Read twice: the second read is served from the cache.
    assert_eq!(r.get_manifest(&name, &tag, true).await.unwrap().digest, first.digest);
    assert_eq!(r.get_manifest(&name, &tag, true).await.unwrap().digest, first.digest);
    let second = r.put_manifest(&name, &tag, "", image_manifest(&config, &l2)).await.unwrap();
    assert_eq!(r.get_manifest(&name, &tag, true).await.unwrap().digest, second.digest, "a moved tag is never served stale");
    r.delete_manifest(&name, &Reference::Digest(second.digest.clone())).await.unwrap();
    assert!(matches!(r.get_manifest(&name, &tag, true).await, Err(RegistryError::ManifestUnknown(_))), "a deleted image's tag is gone");
    r.put_manifest(&name, &tag, "", image_manifest(&config, &l1)).await.unwrap();
    assert_eq!(r.get_manifest(&name, &tag, true).await.unwrap().digest, first.digest);
    r.delete_manifest(&name, &tag).await.unwrap();
    assert!(matches!(r.get_manifest(&name, &tag, true).await, Err(RegistryError::ManifestUnknown(_))), "an untagged tag is gone");
}

/// A signature-like referrer: an image manifest with the plain image config and no artifactType.
fn plain_referrer(config: &Digest, layer: &Digest, subject: &Digest) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":1}}}}"#
    ))
}

async fn push_blobs(r: &Registry, name: &Repo) -> (Digest, Digest) {
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"layer");
    r.upload_blob(name, &config, stream(b"{}")).await.unwrap();
    r.upload_blob(name, &layer, stream(b"layer")).await.unwrap();
    (config, layer)
}

#[tokio::test]
async fn referrers_without_artifact_type_are_listed_with_their_config_type_and_know_their_subject() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let (config, layer) = push_blobs(&r, &name).await;
    let subject = r.put_manifest(&name, &Reference::parse("v1").unwrap(), "", image_manifest(&config, &layer)).await.unwrap().digest;
    let body = plain_referrer(&config, &layer, &subject);
    let referrer = r.put_manifest(&name, &Reference::Digest(Digest::sha256_of(&body)), "", body).await.unwrap().digest;
    const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

    let all = r.referrers(&name, &subject, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((&all[0].digest, all[0].artifact_type.as_deref()), (&referrer, Some(CONFIG)));
    assert_eq!(r.referrers(&name, &subject, Some(CONFIG)).await.unwrap().len(), 1);
    assert!(r.referrers(&name, &subject, Some("application/vnd.example.sbom")).await.unwrap().is_empty());

    let images = r.images(&name, berth_store::TagStatus::Any, None, None, 10).await.unwrap();
    let subject_of = |d: &Digest| images.iter().find(|i| i.digest == *d).unwrap().subject.clone();
    assert_eq!(subject_of(&referrer), Some(subject.clone()));
    assert_eq!(subject_of(&subject), None);
}

#[tokio::test]
async fn a_push_with_extra_tags_applies_all_of_them_or_none() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let (config, layer) = push_blobs(&r, &name).await;
    let first = image_manifest(&config, &layer);
    let d1 = Digest::of(berth_store::Algorithm::Sha512, &first);
    let tags = |names: &[&str]| names.iter().map(|t| Registry::tag(t).unwrap()).collect::<Vec<_>>();
    // A sha512 manifest can be tagged only this way.
    let put = r.put_manifest_tagged(&name, &Reference::Digest(d1.clone()), &tags(&["a", "b"]), "", first).await.unwrap();
    assert_eq!(put.digest, d1);
    assert_eq!(put.tags, vec!["a".to_string(), "b".to_string()]);
    for t in ["a", "b"] {
        assert_eq!(r.get_manifest(&name, &Reference::parse(t).unwrap(), false).await.unwrap().digest, d1);
    }

    // Immutable tags: one tag already naming another manifest refuses the whole push.
    r.set_tag_mutability(&name, "IMMUTABLE", &[]).await.unwrap();
    let other = Bytes::from(
        String::from_utf8(image_manifest(&config, &layer).to_vec())
            .unwrap()
            .replace("\"size\":5", "\"size\":5,\"annotations\":{\"x\":\"y\"}"),
    );
    let d2 = Digest::sha256_of(&other);
    let err = r.put_manifest_tagged(&name, &Reference::Digest(d2.clone()), &tags(&["c", "b"]), "", other).await.unwrap_err();
    assert!(matches!(&err, RegistryError::TagImmutable { tag, .. } if tag == "b"), "{err:?}");
    assert!(matches!(r.get_manifest(&name, &Reference::parse("c").unwrap(), false).await, Err(RegistryError::ManifestUnknown(_))));
    assert!(matches!(r.get_manifest(&name, &Reference::Digest(d2), false).await, Err(RegistryError::ManifestUnknown(_))));
    assert_eq!(r.list_tags(&name, None, None).await.unwrap().items, vec!["a".to_string(), "b".to_string()]);
}

#[tokio::test]
async fn a_descriptor_must_declare_the_size_of_what_it_names() {
    let env = Env::new();
    let r = env.registry().await;
    let name = repo("team/app");
    let (config, layer) = push_blobs(&r, &name).await;
    let tag = Reference::parse("v1").unwrap();
    let huge = i64::MAX.to_string();
    let lying = Bytes::from(
        String::from_utf8(image_manifest(&config, &layer).to_vec()).unwrap().replace(r#""size":5"#, &format!(r#""size":{huge}"#)),
    );
    match r.put_manifest(&name, &tag, "", lying).await {
        Err(RegistryError::ManifestInvalid(msg)) => {
            assert!(msg.contains(&layer.to_string()) && msg.contains(&huge) && msg.contains(" 5 bytes"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.get_manifest(&name, &tag, true).await, Err(RegistryError::ManifestUnknown(_))), "nothing stored");
    // The config too, and a layer named twice with one wrong size.
    let wrong_config = String::from_utf8(image_manifest(&config, &layer).to_vec()).unwrap().replace(r#""size":2"#, r#""size":3"#);
    assert!(
        matches!(r.put_manifest(&name, &tag, "", Bytes::from(wrong_config)).await, Err(RegistryError::ManifestInvalid(m)) if m.contains(&config.to_string()))
    );
    let twice = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":6}}]}}"#
    );
    assert!(matches!(r.put_manifest(&name, &tag, "", Bytes::from(twice)).await, Err(RegistryError::ManifestInvalid(_))));

    // An index: each child's declared size must be the child manifest's length.
    let child = image_manifest(&config, &layer);
    let child_digest = r.put_manifest(&name, &tag, "", child.clone()).await.unwrap().digest;
    let index = |size: usize| {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child_digest}","size":{size}}}]}}"#
        ))
    };
    let list = Reference::parse("list").unwrap();
    match r.put_manifest(&name, &list, "", index(child.len() + 1)).await {
        Err(RegistryError::ManifestInvalid(msg)) => {
            assert!(msg.contains(&child_digest.to_string()) && msg.contains(&format!("{} bytes", child.len())), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    r.put_manifest(&name, &list, "", index(child.len())).await.unwrap();
}
