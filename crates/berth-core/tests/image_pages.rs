//! The console's images table, on every backend: images in true push order (newest first)
//! across pages, tag and digest search, and platform manifests and referrers kept under the
//! image they belong to.

use berth_core::images::{NestedImage, Relation};
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, Tag};
use berth_store::{ImageFilter, TagStatus};
use bytes::Bytes;

mod common;
use common::{push_blob, Env};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

const ALL: ImageFilter<'static> = ImageFilter { status: TagStatus::Any, storage: None, search: None, top_level: true };

fn repo() -> Repo {
    Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse("team/app").unwrap())
}

/// Pushes an image distinct by `seed`, tagged `tag` if given, referring to `subject` if given.
async fn push(r: &Registry, seed: &str, tag: Option<&str>, subject: Option<&Digest>) -> (Digest, usize) {
    let config = push_blob(r, &repo(), format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let config_size = seed.len() + 11;
    let layer = push_blob(r, &repo(), b"layer").await;
    let subject = subject
        .map(|s| format!(r#","artifactType":"application/spdx+json","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":10}}"#))
        .unwrap_or_default();
    let body = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]{subject}}}"#
    ));
    put(r, body, OCI_MANIFEST, tag).await
}

async fn put(r: &Registry, body: Bytes, media_type: &str, tag: Option<&str>) -> (Digest, usize) {
    let digest = Digest::sha256_of(&body);
    let size = body.len();
    let reference = match tag {
        Some(t) => Reference::Tag(Tag::parse(t).unwrap()),
        None => Reference::Digest(digest.clone()),
    };
    r.put_manifest(&repo(), &reference, media_type, body).await.unwrap();
    (digest, size)
}

/// Every page of the listing, `limit` at a time, as (digest, first tag).
async fn all_pages(r: &Registry, filter: &ImageFilter<'_>, limit: u32) -> Vec<(Digest, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = r.image_page(&repo(), filter, token.as_deref(), limit).await.unwrap();
        assert!(page.images.len() <= limit as usize);
        out.extend(page.images.iter().map(|i| (i.digest.clone(), i.tags.first().cloned().unwrap_or_default())));
        match page.next {
            Some(n) => token = Some(n),
            None => return out,
        }
    }
}

#[tokio::test]
async fn images_page_newest_first_across_pages_without_gaps_or_duplicates() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    r.create_repository(&repo(), Default::default()).await.unwrap();
    let mut pushed = Vec::new();
    for i in 0..110 {
        env.advance(1000);
        pushed.push(push(&r, &format!("build-{i:03}"), Some(&format!("build-{i:03}")), None).await.0);
    }
    // Two more at the same instant: ties go by digest.
    env.advance(1000);
    let mut same = vec![push(&r, "tie-a", Some("tie-a"), None).await.0, push(&r, "tie-b", Some("tie-b"), None).await.0];
    same.sort_by_key(|d| d.to_string());
    let mut expected: Vec<Digest> = same;
    expected.extend(pushed.iter().rev().cloned());

    let first = r.image_page(&repo(), &ALL, None, 100).await.unwrap();
    assert_eq!(first.images.len(), 100);
    assert_eq!(first.images[2].tags, vec!["build-109".to_string()], "newest first, whatever the digests");
    assert_eq!(first.images[99].tags, vec!["build-012".to_string()]);
    let second = r.image_page(&repo(), &ALL, first.next.as_deref(), 100).await.unwrap();
    assert_eq!(second.images.iter().map(|i| i.tags[0].as_str()).collect::<Vec<_>>().first(), Some(&"build-011"));
    assert_eq!(second.images.len(), 12);
    assert!(second.next.is_none());

    for limit in [100, 7, 1] {
        let got: Vec<Digest> = all_pages(&r, &ALL, limit).await.into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, expected, "pages of {limit}");
    }
    let bad = r.image_page(&repo(), &ALL, Some("yesterday"), 10).await.unwrap_err();
    assert!(matches!(bad, RegistryError::InvalidParameter(_)), "{bad:?}");
}

#[tokio::test]
async fn images_search_matches_tags_and_digests_in_any_case() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    r.create_repository(&repo(), Default::default()).await.unwrap();
    let mut pushed = Vec::new();
    for i in 0..30 {
        env.advance(1000);
        pushed.push(push(&r, &format!("s{i}"), Some(&format!("build-{i:03}")), None).await.0);
    }
    let search = |s: &'static str| ImageFilter { search: Some(s), ..ALL };
    let tags: Vec<String> = all_pages(&r, &search("BUILD-01"), 4).await.into_iter().map(|(_, t)| t).collect();
    assert_eq!(tags, (10..20).rev().map(|i| format!("build-{i:03}")).collect::<Vec<_>>());
    let hex = pushed[7].to_string()[7..27].to_string();
    let by_digest = r.image_page(&repo(), &ImageFilter { search: Some(&hex), ..ALL }, None, 100).await.unwrap();
    assert_eq!(by_digest.images.iter().map(|i| i.digest.clone()).collect::<Vec<_>>(), vec![pushed[7].clone()]);
    // LIKE wildcards are plain characters here.
    assert!(r.image_page(&repo(), &search("build_0"), None, 100).await.unwrap().images.is_empty());
    assert!(r.image_page(&repo(), &search("%"), None, 100).await.unwrap().images.is_empty());
}

#[tokio::test]
async fn platforms_and_referrers_are_listed_under_their_image() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    r.create_repository(&repo(), Default::default()).await.unwrap();
    let (amd, amd_size) = push(&r, "amd64", None, None).await;
    let (arm, arm_size) = push(&r, "arm64", None, None).await;
    let (tagged_child, tagged_size) = push(&r, "riscv", Some("riscv-only"), None).await;
    let entry = |d: &Digest, size: usize, arch: &str| {
        format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{size},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#)
    };
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{},{}]}}"#,
        entry(&amd, amd_size, "amd64"),
        entry(&arm, arm_size, "arm64"),
        entry(&tagged_child, tagged_size, "riscv64")
    ));
    let (index, _) = put(&r, index, OCI_INDEX, Some("bookworm")).await;
    let (index_sbom, _) = push(&r, "index-sbom", None, Some(&index)).await;
    let (arm_sig, _) = push(&r, "arm-sig", None, Some(&arm)).await;
    let (plain, _) = push(&r, "plain", Some("v1"), None).await;
    let (plain_sig, _) = push(&r, "plain-sig", None, Some(&plain)).await;
    let (dangling, _) = push(&r, "dangling", None, Some(&Digest::sha256_of(b"gone"))).await;
    let (loose, _) = push(&r, "loose", None, None).await;

    let top: Vec<Digest> = all_pages(&r, &ALL, 100).await.into_iter().map(|(d, _)| d).collect();
    let mut want = vec![index.clone(), tagged_child.clone(), plain.clone(), dangling.clone(), loose.clone()];
    want.sort_by_key(|d| d.to_string());
    let mut got = top.clone();
    got.sort_by_key(|d| d.to_string());
    assert_eq!(got, want, "children and referrers are not loose rows; tagged and dangling ones are");
    let untagged = ImageFilter { status: TagStatus::Untagged, ..ALL };
    let untagged: Vec<Digest> = all_pages(&r, &untagged, 100).await.into_iter().map(|(d, _)| d).collect();
    assert_eq!(untagged.len(), 2, "only the dangling referrer and the loose image: {untagged:?}");
    // A search finds nested ones too (someone looking for a digest wants to find it).
    let hex = arm.to_string()[7..27].to_string();
    let found = r.image_page(&repo(), &ImageFilter { search: Some(&hex), ..ALL }, None, 10).await.unwrap();
    assert_eq!(found.images.iter().map(|i| i.digest.clone()).collect::<Vec<_>>(), vec![arm.clone()]);

    let index_row = r.image_page(&repo(), &ImageFilter { search: Some("bookworm"), ..ALL }, None, 10).await.unwrap().images;
    let nested = r.nested_images(&repo(), &index_row[0]).await.unwrap();
    let shape = |n: &NestedImage| (n.image.digest.clone(), n.relation.clone());
    assert_eq!(
        nested.iter().map(shape).collect::<Vec<_>>(),
        vec![
            (amd.clone(), Relation::Platform("linux/amd64".into())),
            (arm.clone(), Relation::Platform("linux/arm64".into())),
            (tagged_child.clone(), Relation::Platform("linux/riscv64".into())),
            (index_sbom, Relation::Referrer { of: index.clone() }),
            (arm_sig, Relation::Referrer { of: arm.clone() }),
        ]
    );
    let plain_row = r.image_page(&repo(), &ImageFilter { search: Some("v1"), ..ALL }, None, 10).await.unwrap().images;
    let nested = r.nested_images(&repo(), &plain_row[0]).await.unwrap();
    assert_eq!(nested.iter().map(shape).collect::<Vec<_>>(), vec![(plain_sig, Relation::Referrer { of: plain.clone() })]);
}

/// A repository's size counts each blob once: two images sharing a layer store it once.
#[tokio::test]
async fn repository_size_counts_a_shared_layer_once() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    r.create_repository(&repo(), Default::default()).await.unwrap();
    assert_eq!(r.repository_size(&repo()).await.unwrap(), 0);
    // Each image: its own config ({"seed":"…"}) and the same 5-byte layer.
    let (a, _) = push(&r, "one", Some("one"), None).await;
    let (b, _) = push(&r, "two", Some("two"), None).await;
    let described: u64 = r.images(&repo(), TagStatus::Any, None, None, 10).await.unwrap().iter().map(|i| i.image_size).sum();
    let configs = ("one".len() + 11 + "two".len() + 11) as u64;
    assert_eq!(described, configs + 5 + 5, "imageSizeInBytes counts the layer in each image");
    assert_eq!(r.repository_size(&repo()).await.unwrap(), configs + 5, "the repository stores the layer once");
    let gone = berth_core::images::ImageId { digest: Some(b.to_string()), tag: None };
    let (deleted, failures) = r.batch_delete_images(&repo(), &[gone]).await.unwrap();
    assert_eq!((deleted.len(), failures.len()), (1, 0));
    assert_eq!(r.repository_size(&repo()).await.unwrap(), 3 + 11 + 5, "left: {a}'s config and the layer");
    let missing =
        Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse("team/none").unwrap());
    assert!(matches!(r.repository_size(&missing).await, Err(RegistryError::NameUnknown(_))));
}
