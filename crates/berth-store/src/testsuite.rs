//! The metadata store suite every backend runs (feature `testsuite`): each test body is
//! written once over `Arc<dyn MetadataStore>`; a backend crate supplies a [`Fixture`] and
//! expands [`metadata_suite!`](crate::metadata_suite) in one of its test files (distribution's
//! pattern: the suite lives with the interface, each implementation runs it).

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

use crate::*;

mod audit;
mod objects;
mod public;
mod pull_through;
mod replication;
mod secrets;
mod settings;
mod templates;
mod webhooks;
pub use audit::*;
pub use objects::*;
pub use public::*;
pub use pull_through::*;
pub use replication::*;
pub use secrets::*;
pub use settings::*;
pub use templates::*;
pub use webhooks::*;

pub type Store = Arc<dyn MetadataStore>;

/// What the suite needs of a backend beyond the store under test.
/// Its futures need not be `Send`: the suite awaits them on the test's own task (and
/// `SqliteMetadataStore::open`'s future is not provably `Send` inside a boxed one).
#[async_trait(?Send)]
pub trait Backend {
    /// Another handle on the same database: a restart, or a second node.
    async fn reopen(&self) -> Store;
    /// Several processes share the database (several nodes): a second node is another
    /// handle; otherwise (one process per database) it is the same store used concurrently.
    fn is_shared(&self) -> bool;
    /// Runs statements on the database directly: the suite makes states only an older version
    /// (and then a migration) could leave, such as blobs linked before their scope held them.
    async fn execute(&self, sql: &str);
}

pub struct Fixture {
    pub store: Store,
    pub backend: Box<dyn Backend>,
}

impl Fixture {
    pub async fn reopen(&self) -> Store {
        self.backend.reopen().await
    }

    /// A second node racing the first.
    pub async fn second_node(&self) -> Store {
        if self.backend.is_shared() {
            self.backend.reopen().await
        } else {
            self.store.clone()
        }
    }

    pub fn is_shared(&self) -> bool {
        self.backend.is_shared()
    }
}

/// Expands to one `#[tokio::test]` per suite test, each on a fixture from `$fixture` (an
/// expression giving a future of a [`Fixture`]).
#[macro_export]
macro_rules! metadata_suite {
    ($fixture:expr) => {
        $crate::metadata_suite!(@tests $fixture; repositories, repository_delete, blobs, manifests_and_tags, listings, referrers, pulls_and_storage_class, lifecycle_policies, expire_and_archive, garbage_collection, uploads, scans, identity, leases, jobs, keys, reopen_keeps_data, racing_put_manifest, racing_gc_and_push, racing_expire_and_push, blob_objects_per_scope, gc_of_objects, clear_objects_and_unsealed_blobs, creation_templates, repository_with_policies, account_settings_and_exclusions, racing_exclusions_keep_the_limit, replication_configuration_and_statuses, remote_registries, replication_backfills, public_registries_and_catalog, public_repository_search, audit_trail, audit_large_batch, webhooks_deliveries_and_history, outbox_jobs_commit_with_their_change, secrets_rows, pull_through_rules_and_tag_checks);
    };
    (@tests $fixture:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testsuite::$name($fixture.await).await
            }
        )*
    };
}

// ---- helpers ----

const NOW: Millis = 1_700_000_000_000;

fn settings() -> RepositorySettings {
    RepositorySettings::ecr_defaults()
}

fn key(name: &str) -> RepoKey {
    RepoKey { account: "123456789012".into(), region: "us-east-1".into(), name: name.into() }
}

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn manifest(content: &str, pushed_at: Millis) -> ManifestRow {
    ManifestRow {
        digest: d(content),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        subject: None,
        annotations: None,
        image_size: 100,
        content: Bytes::from(content.to_string()),
        pushed_at,
        storage_class: StorageClass::Standard,
    }
}

async fn repo(s: &Store, name: &str) -> RepoKey {
    let k = key(name);
    s.create_repository(&k, &RepositorySettings::ecr_defaults(), &[], NOW).await.expect("create repository").expect("repository is new");
    k
}

fn reference(digest: Digest, kind: RefKind, size: u64) -> ManifestReference {
    ManifestReference { digest, kind, size }
}

/// References declaring the sizes the store holds (0 for what it does not hold).
async fn as_stored(s: &Store, k: &RepoKey, refs: Vec<(Digest, RefKind)>) -> Vec<ManifestReference> {
    let mut out = Vec::with_capacity(refs.len());
    for (digest, kind) in refs {
        let size = match kind {
            RefKind::Blob => s.repository_blob(k, &digest).await.expect("blob size"),
            RefKind::Manifest => s.get_manifest_by_digest(k, &digest).await.expect("manifest").map(|m| m.content.len() as u64),
        };
        out.push(reference(digest, kind, size.unwrap_or(0)));
    }
    out
}

async fn put(s: &Store, k: &RepoKey, m: ManifestRow, refs: Vec<(Digest, RefKind)>, tag: Option<(&str, TagMove)>) -> PutManifestOutcome {
    let references = as_stored(s, k, refs).await;
    s.put_manifest(NewManifest { repository: k, manifest: m, references, tags: tag.into_iter().collect(), outbox: Vec::new() })
        .await
        .expect("put manifest")
}

/// Pushes `content` with one layer `layer` (linked first) and an optional moving tag.
async fn push(s: &Store, k: &RepoKey, content: &str, layer: &str, tag: Option<&str>, at: Millis) -> Digest {
    s.link_blob(k, &d(layer), 10, at).await.expect("link layer");
    let out = put(s, k, manifest(content, at), vec![(d(layer), RefKind::Blob)], tag.map(|t| (t, TagMove::Move))).await;
    assert!(matches!(out, PutManifestOutcome::Stored { .. }), "{out:?}");
    d(content)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn sorted_digests(v: &[&Digest]) -> Vec<Digest> {
    let mut v: Vec<Digest> = v.iter().map(|d| (*d).clone()).collect();
    v.sort_by_key(|d| d.to_string());
    v
}

// ---- tests ----

pub async fn repositories(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.is_shared(), f.is_shared());
    let tags = vec![("team".to_string(), "a".to_string())];
    let row = s.create_repository(&key("b"), &RepositorySettings::ecr_defaults(), &tags, NOW).await.unwrap().expect("new");
    assert_eq!(row.key, key("b"));
    assert_eq!(row.created_at, NOW);
    assert_eq!(row.settings, settings());
    assert_eq!(row.policy, None);
    assert!(s.create_repository(&key("b"), &RepositorySettings::ecr_defaults(), &[], NOW + 1).await.unwrap().is_none());
    repo(s, "a").await;
    repo(s, "c").await;
    repo(s, "B").await;
    let other = RepoKey { account: "210987654321".into(), ..key("zz") };
    s.create_repository(&other, &RepositorySettings::ecr_defaults(), &[], NOW).await.unwrap().expect("new");

    let names = |rows: Vec<RepositoryRow>| rows.into_iter().map(|r| r.key.name).collect::<Vec<_>>();
    let all = s.list_repositories("123456789012", "us-east-1", None, 10).await.unwrap();
    assert_eq!(names(all), strings(&["B", "a", "b", "c"]), "byte order, as SQLite");
    let page = s.list_repositories("123456789012", "us-east-1", None, 2).await.unwrap();
    assert_eq!(names(page), strings(&["B", "a"]));
    let page = s.list_repositories("123456789012", "us-east-1", Some("a"), 2).await.unwrap();
    assert_eq!(names(page), strings(&["b", "c"]));
    assert!(s.list_repositories("123456789012", "us-east-1", Some("c"), 2).await.unwrap().is_empty());
    assert!(s.list_repositories("123456789012", "eu-west-1", None, 2).await.unwrap().is_empty());

    let mut changed = settings();
    changed.tag_mutability = TagMutability::Immutable;
    changed.tag_mutability_exclusions = Some("[{\"filterType\":\"WILDCARD\",\"filter\":\"dev-*\"}]".into());
    changed.scan_on_push = true;
    changed.kms_key = Some("arn:kms".into());
    assert!(s.update_repository_settings(&key("b"), &changed).await.unwrap());
    assert!(!s.update_repository_settings(&key("nope"), &changed).await.unwrap());
    assert!(s.set_repository_policy(&key("b"), Some("{\"Statement\":[]}")).await.unwrap());
    assert!(!s.set_repository_policy(&key("nope"), Some("{}")).await.unwrap());
    let got = s.get_repository(&key("b")).await.unwrap().expect("exists");
    assert_eq!(got.settings, changed);
    assert_eq!(got.policy.as_deref(), Some("{\"Statement\":[]}"));
    assert_eq!(got.id, row.id);
    assert!(s.set_repository_policy(&key("b"), None).await.unwrap());
    assert_eq!(s.get_repository(&key("b")).await.unwrap().expect("exists").policy, None);
    assert!(s.get_repository(&key("nope")).await.unwrap().is_none());

    // Resource tags.
    assert_eq!(s.list_resource_tags(&key("b")).await.unwrap(), tags);
    assert!(s.put_resource_tags(&key("b"), &[("env".into(), "prod".into()), ("team".into(), "b".into())]).await.unwrap());
    assert_eq!(
        s.list_resource_tags(&key("b")).await.unwrap(),
        vec![("env".to_string(), "prod".to_string()), ("team".to_string(), "b".to_string())]
    );
    assert!(s.remove_resource_tags(&key("b"), &["team".into(), "missing".into()]).await.unwrap());
    assert_eq!(s.list_resource_tags(&key("b")).await.unwrap(), vec![("env".to_string(), "prod".to_string())]);
    assert!(!s.put_resource_tags(&key("nope"), &tags).await.unwrap());
    assert!(!s.remove_resource_tags(&key("nope"), &["env".into()]).await.unwrap());
    assert!(s.list_resource_tags(&key("nope")).await.unwrap().is_empty());

    // Registry policies.
    assert_eq!(s.get_registry_policy("123456789012", "us-east-1").await.unwrap(), None);
    assert!(s.set_registry_policy("123456789012", "us-east-1", Some("{\"v\":1}")).await.unwrap());
    assert!(s.set_registry_policy("123456789012", "us-east-1", Some("{\"v\":2}")).await.unwrap());
    assert_eq!(s.get_registry_policy("123456789012", "us-east-1").await.unwrap().as_deref(), Some("{\"v\":2}"));
    assert_eq!(s.get_registry_policy("123456789012", "eu-west-1").await.unwrap(), None);
    assert!(s.set_registry_policy("123456789012", "us-east-1", None).await.unwrap());
    assert!(!s.set_registry_policy("123456789012", "us-east-1", None).await.unwrap());
    assert_eq!(s.get_registry_policy("123456789012", "us-east-1").await.unwrap(), None);
}

pub async fn repository_delete(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let empty = repo(s, "empty").await;
    push(s, &k, "m1", "l1", Some("v1"), NOW).await;
    s.create_upload(&UploadRow {
        id: "u1".into(),
        repository: k.clone(),
        started_at: NOW,
        cursor: UploadCursor::default(),
        hash_state: None,
    })
    .await
    .unwrap();
    assert!(matches!(s.delete_repository(&k, false).await.unwrap(), DeleteRepositoryOutcome::NotEmpty));
    assert!(s.get_repository(&k).await.unwrap().is_some());
    match s.delete_repository(&empty, false).await.unwrap() {
        DeleteRepositoryOutcome::Deleted(row) => assert_eq!(row.key, empty),
        other => panic!("{other:?}"),
    }
    match s.delete_repository(&k, true).await.unwrap() {
        DeleteRepositoryOutcome::Deleted(row) => assert_eq!(row.key, k),
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.delete_repository(&k, true).await.unwrap(), DeleteRepositoryOutcome::NotFound));
    assert!(s.get_repository(&k).await.unwrap().is_none());
    assert_eq!(s.count_uploads().await.unwrap(), 0);
    assert!(s.all_references().await.unwrap().is_empty());
    // The blob row stays (GC's business), unlinked.
    let gc = s.gc_candidates(NOW + 1).await.unwrap();
    assert_eq!(gc.iter().map(|c| c.digest.clone()).collect::<Vec<_>>(), vec![d("l1")]);
    // The name can be created again, empty.
    let again = repo(s, "app").await;
    assert!(s.list_tags(&again, None, 10).await.unwrap().is_empty());
    assert_eq!(s.repository_blob(&again, &d("l1")).await.unwrap(), None);
}

pub async fn blobs(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let other = repo(s, "other").await;
    s.link_blob(&k, &d("l1"), 1234, NOW).await.unwrap();
    s.link_blob(&k, &d("l1"), 1234, NOW + 5).await.unwrap();
    assert_eq!(s.repository_blob(&k, &d("l1")).await.unwrap(), Some(1234));
    assert_eq!(s.repository_blob(&other, &d("l1")).await.unwrap(), None);
    assert_eq!(s.repository_blob(&k, &d("l2")).await.unwrap(), None);
    assert!(s.link_blob(&key("missing"), &d("l1"), 1, NOW).await.is_err());

    // Last seen moves with links and touches; GC candidates reflect it.
    assert!(s.gc_candidates(NOW + 5).await.unwrap().is_empty());
    assert_eq!(s.gc_candidates(NOW + 6).await.unwrap().len(), 1);
    s.touch_blob(&d("l1"), NOW + 100, NOW + 3).await.unwrap(); // fresh enough: unchanged
    assert_eq!(s.gc_candidates(NOW + 6).await.unwrap().len(), 1);
    s.touch_blob(&d("l1"), NOW + 100, NOW + 50).await.unwrap();
    assert!(s.gc_candidates(NOW + 100).await.unwrap().is_empty());
    assert_eq!(s.gc_candidates(NOW + 101).await.unwrap()[0].size, 1234);
    s.touch_blob(&d("unknown"), NOW, NOW + 1).await.unwrap();

    // Unlink: referenced, unlinked, not linked.
    s.link_blob(&k, &d("l2"), 7, NOW).await.unwrap();
    put(s, &k, manifest("m1", NOW), vec![(d("l1"), RefKind::Blob)], None).await;
    assert_eq!(s.unlink_blob(&k, &d("l1")).await.unwrap(), UnlinkOutcome::Referenced);
    assert_eq!(s.unlink_blob(&k, &d("l2")).await.unwrap(), UnlinkOutcome::Unlinked);
    assert_eq!(s.unlink_blob(&k, &d("l2")).await.unwrap(), UnlinkOutcome::NotLinked);
    assert_eq!(s.unlink_blob(&key("missing"), &d("l2")).await.unwrap(), UnlinkOutcome::NotLinked);
    assert_eq!(s.repository_blob(&k, &d("l1")).await.unwrap(), Some(1234));
    assert_eq!(s.repository_blob(&k, &d("l2")).await.unwrap(), None);
}

pub async fn manifests_and_tags(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    s.link_blob(&k, &d("l1"), 10, NOW).await.unwrap();
    let layer = vec![(d("l1"), RefKind::Blob)];

    let mut m1 = manifest("m1", NOW);
    m1.artifact_type = Some("application/x-test".into());
    m1.annotations = Some("{\"a\":\"b\"}".into());
    m1.image_size = 4242;
    match put(s, &k, m1.clone(), layer.clone(), Some(("latest", TagMove::Move))).await {
        PutManifestOutcome::Stored { inserted, restored } => assert!(inserted && !restored),
        other => panic!("{other:?}"),
    }
    let got = s.get_manifest_by_tag(&k, "latest").await.unwrap().expect("tagged");
    assert_eq!(got.digest, d("m1"));
    assert_eq!(got.content, Bytes::from("m1"));
    assert_eq!(got.media_type, m1.media_type);
    assert_eq!(got.artifact_type, m1.artifact_type);
    assert_eq!(got.annotations, m1.annotations);
    assert_eq!(got.image_size, 4242);
    assert_eq!(got.pushed_at, NOW);
    assert_eq!(got.subject, None);
    assert_eq!(got.storage_class, StorageClass::Standard);
    assert_eq!(s.get_manifest_by_digest(&k, &d("m1")).await.unwrap().expect("by digest").content, Bytes::from("m1"));
    assert!(s.get_manifest_by_digest(&k, &d("m2")).await.unwrap().is_none());
    assert!(s.get_manifest_by_tag(&k, "nope").await.unwrap().is_none());

    // A re-push is not an insert.
    match put(s, &k, manifest("m1", NOW + 1), layer.clone(), None).await {
        PutManifestOutcome::Stored { inserted, restored } => assert!(!inserted && !restored),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.get_manifest_by_digest(&k, &d("m1")).await.unwrap().expect("kept").pushed_at, NOW);

    // Tag move.
    put(s, &k, manifest("m2", NOW + 2), layer.clone(), Some(("latest", TagMove::Move))).await;
    assert_eq!(s.get_manifest_by_tag(&k, "latest").await.unwrap().expect("moved").digest, d("m2"));

    // CreateOnly: refused onto another manifest, accepted for a new tag or the same manifest.
    match put(s, &k, manifest("m3", NOW + 3), layer.clone(), Some(("latest", TagMove::CreateOnly))).await {
        PutManifestOutcome::TagExists(existing) => assert_eq!(existing, d("m2")),
        other => panic!("{other:?}"),
    }
    assert!(s.get_manifest_by_digest(&k, &d("m3")).await.unwrap().is_none(), "nothing written");
    match put(s, &k, manifest("m2", NOW + 3), layer.clone(), Some(("latest", TagMove::CreateOnly))).await {
        PutManifestOutcome::Stored { inserted, .. } => assert!(!inserted),
        other => panic!("{other:?}"),
    }
    match put(s, &k, manifest("m3", NOW + 3), layer.clone(), Some(("v3", TagMove::CreateOnly))).await {
        PutManifestOutcome::Stored { inserted, .. } => assert!(inserted),
        other => panic!("{other:?}"),
    }

    // Missing references write nothing.
    match put(s, &k, manifest("m4", NOW), vec![(d("l1"), RefKind::Blob), (d("nolayer"), RefKind::Blob)], Some(("v4", TagMove::Move))).await
    {
        PutManifestOutcome::MissingReference(dg, kind) => assert_eq!((dg, kind), (d("nolayer"), RefKind::Blob)),
        other => panic!("{other:?}"),
    }
    match put(s, &k, manifest("idx", NOW), vec![(d("m1"), RefKind::Manifest), (d("nochild"), RefKind::Manifest)], None).await {
        PutManifestOutcome::MissingReference(dg, kind) => assert_eq!((dg, kind), (d("nochild"), RefKind::Manifest)),
        other => panic!("{other:?}"),
    }
    assert!(s.get_manifest_by_digest(&k, &d("m4")).await.unwrap().is_none());
    assert!(s.get_manifest_by_tag(&k, "v4").await.unwrap().is_none());
    // A reference whose declared size is not the stored one writes nothing either.
    for wrong in [reference(d("l1"), RefKind::Blob, i64::MAX as u64), reference(d("m1"), RefKind::Manifest, 3)] {
        let new = NewManifest {
            repository: &k,
            manifest: manifest("m4", NOW),
            references: vec![wrong.clone()],
            tags: vec![("v4", TagMove::Move)],
            outbox: Vec::new(),
        };
        match s.put_manifest(new).await.unwrap() {
            PutManifestOutcome::SizeMismatch { reference, stored } => {
                assert_eq!(reference, wrong);
                assert_eq!(stored, if wrong.kind == RefKind::Blob { 10 } else { 2 });
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(s.get_manifest_by_digest(&k, &d("m4")).await.unwrap().is_none());
    assert!(s.get_manifest_by_tag(&k, "v4").await.unwrap().is_none());
    assert!(matches!(put(s, &key("missing"), manifest("m5", NOW), vec![], None).await, PutManifestOutcome::RepositoryMissing));
    // A blob linked into another repository does not count.
    let other = repo(s, "other").await;
    assert!(matches!(
        put(s, &other, manifest("m1", NOW), layer.clone(), None).await,
        PutManifestOutcome::MissingReference(_, RefKind::Blob)
    ));

    // An index over m1 and m2.
    put(s, &k, manifest("idx", NOW + 4), vec![(d("m1"), RefKind::Manifest), (d("m2"), RefKind::Manifest)], Some(("multi", TagMove::Move)))
        .await;
    let mut refs = s.all_references().await.unwrap();
    refs.sort_by_key(|(_, m, c, _)| (m.to_string(), c.to_string()));
    let mut want = vec![
        (k.clone(), d("m1"), d("l1"), RefKind::Blob),
        (k.clone(), d("m2"), d("l1"), RefKind::Blob),
        (k.clone(), d("m3"), d("l1"), RefKind::Blob),
        (k.clone(), d("idx"), d("m1"), RefKind::Manifest),
        (k.clone(), d("idx"), d("m2"), RefKind::Manifest),
    ];
    want.sort_by_key(|(_, m, c, _)| (m.to_string(), c.to_string()));
    assert_eq!(refs, want);

    // delete_tag and delete_manifest.
    assert!(s.delete_tag(&k, "v3").await.unwrap());
    assert!(!s.delete_tag(&k, "v3").await.unwrap());
    assert!(!s.delete_tag(&key("missing"), "v3").await.unwrap());
    assert!(s.get_manifest_by_digest(&k, &d("m3")).await.unwrap().is_some(), "the manifest stays");
    put(s, &k, manifest("m3", NOW), layer.clone(), Some(("a", TagMove::Move))).await;
    put(s, &k, manifest("m3", NOW), layer.clone(), Some(("b", TagMove::Move))).await;
    assert_eq!(s.delete_manifest(&k, &d("m3")).await.unwrap(), DeleteManifestOutcome::Deleted);
    assert_eq!(s.delete_manifest(&k, &d("m3")).await.unwrap(), DeleteManifestOutcome::NotFound);
    assert_eq!(s.delete_manifest(&key("missing"), &d("m3")).await.unwrap(), DeleteManifestOutcome::NotFound);
    // A child the index lists stays, tags and all, until the index goes.
    assert_eq!(s.manifest_parents(&k, &d("m2")).await.unwrap(), vec![d("idx")]);
    assert_eq!(s.manifest_parents(&k, &d("idx")).await.unwrap(), Vec::<Digest>::new());
    assert_eq!(s.delete_manifest(&k, &d("m2")).await.unwrap(), DeleteManifestOutcome::ListedBy(d("idx")));
    assert_eq!(s.get_manifest_by_tag(&k, "latest").await.unwrap().expect("kept").digest, d("m2"));
    assert_eq!(s.list_tags(&k, None, 10).await.unwrap(), strings(&["latest", "multi"]));
    assert_eq!(s.all_references().await.unwrap().len(), 4);
}

pub async fn listings(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let a = push(s, &k, "a", "l", Some("v1"), NOW).await;
    push(s, &k, "a", "l", Some("v2"), NOW).await;
    push(s, &k, "a", "l", Some("V0"), NOW).await;
    let b = push(s, &k, "b", "l", None, NOW + 1).await;
    let c = push(s, &k, "c", "l", Some("latest"), NOW + 2).await;
    let all = sorted_digests(&[&a, &b, &c]);

    assert_eq!(s.list_tags(&k, None, 10).await.unwrap(), strings(&["V0", "latest", "v1", "v2"]));
    assert_eq!(s.list_tags(&k, None, 2).await.unwrap(), strings(&["V0", "latest"]));
    assert_eq!(s.list_tags(&k, Some("latest"), 2).await.unwrap(), strings(&["v1", "v2"]));
    assert!(s.list_tags(&k, Some("v2"), 2).await.unwrap().is_empty());
    assert!(s.list_tags(&key("missing"), None, 2).await.unwrap().is_empty());

    let digests = |rows: &[ImageRow]| rows.iter().map(|r| r.digest.clone()).collect::<Vec<_>>();
    let any = s.list_images(&k, TagStatus::Any, None, None, 10).await.unwrap();
    assert_eq!(digests(&any), all);
    let row_a = any.iter().find(|r| r.digest == a).expect("a listed");
    assert_eq!(row_a.tags, strings(&["V0", "v1", "v2"]));
    assert_eq!(row_a.image_size, 100);
    assert_eq!(row_a.pushed_at, NOW);
    assert_eq!(row_a.last_pulled_at, None);
    assert_eq!(row_a.storage_class, StorageClass::Standard);
    assert_eq!(row_a.media_type, "application/vnd.oci.image.manifest.v1+json");
    assert!(any.iter().find(|r| r.digest == b).expect("b listed").tags.is_empty());
    let first = s.list_images(&k, TagStatus::Any, None, None, 1).await.unwrap();
    assert_eq!(digests(&first), all[..1].to_vec());
    let after = all[0].to_string();
    let rest = s.list_images(&k, TagStatus::Any, None, Some(&after), 10).await.unwrap();
    assert_eq!(digests(&rest), all[1..].to_vec());
    assert_eq!(digests(&s.list_images(&k, TagStatus::Tagged, None, None, 10).await.unwrap()), sorted_digests(&[&a, &c]));
    assert_eq!(digests(&s.list_images(&k, TagStatus::Untagged, None, None, 10).await.unwrap()), vec![b.clone()]);
    assert!(s.list_images(&k, TagStatus::Any, Some(StorageClass::Archive), None, 10).await.unwrap().is_empty());
    assert_eq!(s.list_images(&k, TagStatus::Any, Some(StorageClass::Standard), None, 10).await.unwrap().len(), 3);
    assert_eq!(s.set_storage_class(&k, &c, StorageClass::Archive, NOW + 10).await.unwrap(), Some(true));
    assert_eq!(digests(&s.list_images(&k, TagStatus::Tagged, Some(StorageClass::Archive), None, 10).await.unwrap()), vec![c.clone()]);
    assert_eq!(digests(&s.list_images(&k, TagStatus::Tagged, Some(StorageClass::Standard), None, 10).await.unwrap()), vec![a.clone()]);

    let image = s.get_image(&k, &a).await.unwrap().expect("image");
    assert_eq!(image.tags, strings(&["V0", "v1", "v2"]));
    assert!(s.get_image(&k, &d("zzz")).await.unwrap().is_none());
    assert!(s.get_image(&key("missing"), &a).await.unwrap().is_none());

    // Image ids: one row per tag, "" for untagged, in (digest, tag) order.
    let mut want: Vec<(Digest, String)> = vec![
        (a.clone(), "V0".into()),
        (a.clone(), "v1".into()),
        (a.clone(), "v2".into()),
        (b.clone(), String::new()),
        (c.clone(), "latest".into()),
    ];
    want.sort_by_key(|(dg, t)| (dg.to_string(), t.clone()));
    assert_eq!(s.list_image_ids(&k, TagStatus::Any, None, None, 10).await.unwrap(), want);
    let page1 = s.list_image_ids(&k, TagStatus::Any, None, None, 2).await.unwrap();
    assert_eq!(page1, want[..2].to_vec());
    let (ld, lt) = (page1[1].0.to_string(), page1[1].1.clone());
    let page2 = s.list_image_ids(&k, TagStatus::Any, None, Some((&ld, &lt)), 2).await.unwrap();
    assert_eq!(page2, want[2..4].to_vec());
    let (ld, lt) = (page2[1].0.to_string(), page2[1].1.clone());
    assert_eq!(s.list_image_ids(&k, TagStatus::Any, None, Some((&ld, &lt)), 2).await.unwrap(), want[4..].to_vec());
    let tagged: Vec<_> = want.iter().filter(|(_, t)| !t.is_empty()).cloned().collect();
    assert_eq!(s.list_image_ids(&k, TagStatus::Tagged, None, None, 10).await.unwrap(), tagged);
    assert_eq!(s.list_image_ids(&k, TagStatus::Untagged, None, None, 10).await.unwrap(), vec![(b.clone(), String::new())]);
    assert_eq!(
        s.list_image_ids(&k, TagStatus::Any, Some(StorageClass::Archive), None, 10).await.unwrap(),
        vec![(c.clone(), "latest".to_string())]
    );
    assert_eq!(s.list_image_ids(&k, TagStatus::Untagged, Some(StorageClass::Archive), None, 10).await.unwrap(), vec![]);
    assert_eq!(s.list_image_ids(&k, TagStatus::Any, Some(StorageClass::Standard), None, 10).await.unwrap().len(), 4);
    assert!(s.list_image_ids(&key("missing"), TagStatus::Any, None, None, 10).await.unwrap().is_empty());
}

pub async fn referrers(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let img = push(s, &k, "img", "l", Some("v1"), NOW).await;
    let mut sig = manifest("sig", NOW + 20);
    sig.subject = Some(img.clone());
    sig.artifact_type = Some("application/vnd.dev.cosign".into());
    sig.annotations = Some("{\"k\":\"v\"}".into());
    let mut sbom_b = manifest("sbom-b", NOW + 10);
    sbom_b.subject = Some(img.clone());
    let mut sbom_a = manifest("sbom-a", NOW + 10);
    sbom_a.subject = Some(img.clone());
    for m in [sig, sbom_b, sbom_a] {
        assert!(matches!(put(s, &k, m, vec![], None).await, PutManifestOutcome::Stored { inserted: true, .. }));
    }
    let got = s.list_referrers(&k, &img).await.unwrap();
    let mut same_time = sorted_digests(&[&d("sbom-a"), &d("sbom-b")]);
    same_time.push(d("sig"));
    assert_eq!(got.iter().map(|r| r.digest.clone()).collect::<Vec<_>>(), same_time, "pushed_at, then digest");
    let sig_row = got.iter().find(|r| r.digest == d("sig")).expect("sig");
    assert_eq!(sig_row.artifact_type.as_deref(), Some("application/vnd.dev.cosign"));
    assert_eq!(sig_row.annotations.as_deref(), Some("{\"k\":\"v\"}"));
    assert_eq!(sig_row.size, 3);
    assert_eq!(s.get_manifest_by_digest(&k, &d("sig")).await.unwrap().expect("sig").subject, Some(img.clone()));
    assert!(s.list_referrers(&k, &d("sig")).await.unwrap().is_empty());
    assert!(s.list_referrers(&key("missing"), &img).await.unwrap().is_empty());
}

pub async fn pulls_and_storage_class(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let a = push(s, &k, "a", "l", Some("v1"), NOW).await;
    let b = push(s, &k, "b", "l", None, NOW).await;
    s.record_pulls(&[]).await.unwrap();
    s.record_pulls(&[(k.clone(), a.clone(), NOW + 50), (k.clone(), b.clone(), NOW + 5), (key("missing"), a.clone(), NOW)]).await.unwrap();
    s.record_pulls(&[(k.clone(), a.clone(), NOW + 40), (k.clone(), d("none"), NOW + 40)]).await.unwrap();
    assert_eq!(s.get_image(&k, &a).await.unwrap().expect("a").last_pulled_at, Some(NOW + 50), "never goes back");
    assert_eq!(s.get_image(&k, &b).await.unwrap().expect("b").last_pulled_at, Some(NOW + 5));
    s.record_pulls(&[(k.clone(), a.clone(), NOW + 60)]).await.unwrap();
    assert_eq!(s.get_image(&k, &a).await.unwrap().expect("a").last_pulled_at, Some(NOW + 60));

    assert_eq!(s.set_storage_class(&k, &a, StorageClass::Archive, NOW + 100).await.unwrap(), Some(true));
    assert_eq!(s.set_storage_class(&k, &a, StorageClass::Archive, NOW + 101).await.unwrap(), Some(false));
    assert_eq!(s.set_storage_class(&k, &d("none"), StorageClass::Archive, NOW).await.unwrap(), None);
    assert_eq!(s.set_storage_class(&key("missing"), &a, StorageClass::Archive, NOW).await.unwrap(), None);
    let img = s.get_image(&k, &a).await.unwrap().expect("a");
    assert_eq!((img.storage_class, img.archived_at, img.last_activated_at), (StorageClass::Archive, Some(NOW + 100), None));
    assert_eq!(s.get_manifest_by_tag(&k, "v1").await.unwrap().expect("listed").storage_class, StorageClass::Archive);
    assert_eq!(s.set_storage_class(&k, &a, StorageClass::Standard, NOW + 200).await.unwrap(), Some(true));
    let img = s.get_image(&k, &a).await.unwrap().expect("a");
    assert_eq!((img.storage_class, img.archived_at, img.last_activated_at), (StorageClass::Standard, Some(NOW + 100), Some(NOW + 200)));

    // A re-push restores an archived image.
    assert_eq!(s.set_storage_class(&k, &b, StorageClass::Archive, NOW + 300).await.unwrap(), Some(true));
    match put(s, &k, manifest("b", NOW + 400), vec![(d("l"), RefKind::Blob)], None).await {
        PutManifestOutcome::Stored { inserted, restored } => assert!(!inserted && restored),
        other => panic!("{other:?}"),
    }
    let img = s.get_image(&k, &b).await.unwrap().expect("b");
    assert_eq!((img.storage_class, img.last_activated_at, img.pushed_at), (StorageClass::Standard, Some(NOW + 400), NOW));
}

pub async fn lifecycle_policies(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let other = repo(s, "other").await;
    repo(s, "none").await;
    assert!(s.lifecycle_policy(&k).await.unwrap().is_none());
    assert!(s.set_lifecycle_policy(&k, Some("{\"rules\":[]}"), NOW).await.unwrap());
    assert!(s.set_lifecycle_policy(&other, Some("{\"rules\":[1]}"), NOW + 1).await.unwrap());
    assert!(!s.set_lifecycle_policy(&key("missing"), Some("{}"), NOW).await.unwrap());
    let p = s.lifecycle_policy(&k).await.unwrap().expect("policy");
    assert_eq!((p.policy.as_str(), p.updated_at, p.evaluated_at), ("{\"rules\":[]}", NOW, None));
    s.mark_lifecycle_evaluated(&k, NOW + 9).await.unwrap();
    s.mark_lifecycle_evaluated(&key("missing"), NOW + 9).await.unwrap();
    assert_eq!(s.lifecycle_policy(&k).await.unwrap().expect("policy").evaluated_at, Some(NOW + 9));
    assert_eq!(s.lifecycle_repositories().await.unwrap(), vec![k.clone(), other.clone()]);
    assert!(s.set_lifecycle_policy(&other, None, NOW + 2).await.unwrap());
    assert!(s.lifecycle_policy(&other).await.unwrap().is_none());
    assert_eq!(s.lifecycle_repositories().await.unwrap(), vec![k.clone()]);

    // Previews.
    assert!(s.lifecycle_preview(&k).await.unwrap().is_none());
    let p1 = LifecyclePreviewRow { policy: "{}".into(), status: "IN_PROGRESS".into(), result: None, started_at: NOW };
    assert!(s.put_lifecycle_preview(&k, &p1).await.unwrap());
    let p2 = LifecyclePreviewRow { policy: "{\"x\":1}".into(), status: "COMPLETE".into(), result: Some("[]".into()), started_at: NOW + 1 };
    assert!(s.put_lifecycle_preview(&k, &p2).await.unwrap());
    assert!(!s.put_lifecycle_preview(&key("missing"), &p2).await.unwrap());
    let got = s.lifecycle_preview(&k).await.unwrap().expect("preview");
    assert_eq!((got.policy, got.status, got.result, got.started_at), (p2.policy, p2.status, p2.result, p2.started_at));

    // lifecycle_images.
    let a = push(s, &k, "a", "l", Some("v2"), NOW).await;
    push(s, &k, "a", "l", Some("v1"), NOW).await;
    let child = push(s, &k, "child", "l", None, NOW + 1).await;
    put(s, &k, manifest("idx", NOW + 2), vec![(child.clone(), RefKind::Manifest)], Some(("multi", TagMove::Move))).await;
    let mut sig = manifest("sig", NOW + 3);
    sig.subject = Some(a.clone());
    put(s, &k, sig, vec![], None).await;
    s.record_pulls(&[(k.clone(), a.clone(), NOW + 70)]).await.unwrap();
    let mut rows = s.lifecycle_images(&k).await.unwrap();
    rows.sort_by_key(|r| r.digest.to_string());
    let mut want = vec![
        (a.clone(), strings(&["v1", "v2"]), NOW, Some(NOW + 70), None, false),
        (child.clone(), vec![], NOW + 1, None, None, true),
        (d("idx"), strings(&["multi"]), NOW + 2, None, None, false),
        (d("sig"), vec![], NOW + 3, None, Some(a.clone()), false),
    ];
    want.sort_by_key(|w| w.0.to_string());
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.digest.clone(), r.tags.clone(), r.pushed_at, r.last_pulled_at, r.subject.clone(), r.referenced_by_manifest))
        .collect();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r.storage_class == StorageClass::Standard && r.archived_at.is_none()));
    assert!(s.lifecycle_images(&key("missing")).await.unwrap().is_empty());
}

pub async fn expire_and_archive(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let img = push(s, &k, "img", "l", Some("v1"), NOW).await;
    // A signature of the image, and a signature of the signature: both go with it.
    let mut sig = manifest("sig", NOW + 1);
    sig.subject = Some(img.clone());
    put(s, &k, sig, vec![], None).await;
    let mut sigsig = manifest("sigsig", NOW + 2);
    sigsig.subject = Some(d("sig"));
    put(s, &k, sigsig, vec![], None).await;
    // A tagged referrer stays.
    let mut kept = manifest("kept-sbom", NOW + 1);
    kept.subject = Some(img.clone());
    put(s, &k, kept, vec![], Some(("sbom", TagMove::Move))).await;
    s.put_image_scan(
        &k,
        &img,
        &ImageScanRow {
            status: "COMPLETE".into(),
            description: None,
            started_at: NOW,
            completed_at: Some(NOW),
            vulndb_version: None,
            findings: None,
        },
    )
    .await
    .unwrap();

    assert_eq!(s.expire_manifest(&k, &img, &strings(&["v2"])).await.unwrap(), ExpireOutcome::Changed);
    assert_eq!(s.expire_manifest(&k, &img, &[]).await.unwrap(), ExpireOutcome::Changed);
    assert_eq!(s.expire_manifest(&k, &d("none"), &[]).await.unwrap(), ExpireOutcome::NotFound);
    assert_eq!(s.expire_manifest(&key("missing"), &img, &[]).await.unwrap(), ExpireOutcome::NotFound);
    assert_eq!(
        s.expire_manifest(&k, &img, &strings(&["v1"])).await.unwrap(),
        ExpireOutcome::Expired(vec![img.clone(), d("sig"), d("sigsig")])
    );
    assert!(s.get_manifest_by_digest(&k, &img).await.unwrap().is_none());
    assert!(s.get_manifest_by_digest(&k, &d("sig")).await.unwrap().is_none());
    assert!(s.get_manifest_by_digest(&k, &d("kept-sbom")).await.unwrap().is_some());
    assert!(s.get_manifest_by_tag(&k, "v1").await.unwrap().is_none());
    assert!(s.image_scan(&k, &img).await.unwrap().is_none(), "the scan goes with the image");
    assert_eq!(s.list_tags(&k, None, 10).await.unwrap(), strings(&["sbom"]));

    // An image an index lists is not expired or archived.
    let child = push(s, &k, "child", "l", Some("c"), NOW).await;
    put(s, &k, manifest("idx", NOW), vec![(child.clone(), RefKind::Manifest)], None).await;
    assert_eq!(s.expire_manifest(&k, &child, &strings(&["c"])).await.unwrap(), ExpireOutcome::Changed);
    assert!(!s.archive_if_unchanged(&k, &child, &strings(&["c"]), NOW).await.unwrap());

    // archive_if_unchanged.
    let a = push(s, &k, "a", "l", Some("x"), NOW).await;
    push(s, &k, "a", "l", Some("w"), NOW).await;
    assert!(!s.archive_if_unchanged(&k, &a, &strings(&["x"]), NOW + 5).await.unwrap());
    assert!(!s.archive_if_unchanged(&key("missing"), &a, &strings(&["w", "x"]), NOW + 5).await.unwrap());
    assert!(!s.archive_if_unchanged(&k, &d("none"), &[], NOW + 5).await.unwrap());
    assert!(s.archive_if_unchanged(&k, &a, &strings(&["w", "x"]), NOW + 5).await.unwrap());
    assert!(!s.archive_if_unchanged(&k, &a, &strings(&["w", "x"]), NOW + 6).await.unwrap(), "already archived");
    let img = s.get_image(&k, &a).await.unwrap().expect("a");
    assert_eq!((img.storage_class, img.archived_at), (StorageClass::Archive, Some(NOW + 5)));
}

pub async fn garbage_collection(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let other = repo(s, "other").await;
    s.link_blob(&k, &d("used"), 1, NOW).await.unwrap();
    s.link_blob(&k, &d("free"), 2, NOW).await.unwrap();
    s.link_blob(&other, &d("free"), 2, NOW).await.unwrap();
    s.link_blob(&k, &d("fresh"), 3, NOW + 100).await.unwrap();
    put(s, &k, manifest("m", NOW), vec![(d("used"), RefKind::Blob)], None).await;
    let mut c: Vec<(Digest, u64)> = s.gc_candidates(NOW + 50).await.unwrap().into_iter().map(|c| (c.digest, c.size)).collect();
    c.sort_by_key(|(dg, _)| dg.to_string());
    assert_eq!(c, vec![(d("free"), 2)]);
    assert!(!s.gc_forget_blob(&d("used"), NOW + 50).await.unwrap(), "referenced");
    assert!(!s.gc_forget_blob(&d("fresh"), NOW + 50).await.unwrap(), "seen after the cut-off");
    assert!(!s.gc_forget_blob(&d("unknown"), NOW + 50).await.unwrap());
    assert!(s.gc_forget_blob(&d("free"), NOW + 50).await.unwrap());
    assert!(!s.gc_forget_blob(&d("free"), NOW + 50).await.unwrap());
    assert_eq!(s.repository_blob(&k, &d("free")).await.unwrap(), None);
    assert_eq!(s.repository_blob(&other, &d("free")).await.unwrap(), None);
    assert!(s.gc_candidates(NOW + 50).await.unwrap().is_empty());
    // Deleting the manifest frees its layer; linking again brings a forgotten blob back.
    assert_eq!(s.delete_manifest(&k, &d("m")).await.unwrap(), DeleteManifestOutcome::Deleted);
    assert_eq!(s.gc_candidates(NOW + 50).await.unwrap().len(), 1);
    s.link_blob(&k, &d("free"), 2, NOW + 60).await.unwrap();
    assert_eq!(s.repository_blob(&k, &d("free")).await.unwrap(), Some(2));
}

pub async fn uploads(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let up = |id: &str, at: Millis| UploadRow {
        id: id.into(),
        repository: k.clone(),
        started_at: at,
        cursor: UploadCursor { len: 0, state: b"init".to_vec() },
        hash_state: None,
    };
    s.create_upload(&up("u1", NOW)).await.unwrap();
    s.create_upload(&up("u2", NOW + 10)).await.unwrap();
    assert!(s.create_upload(&up("u1", NOW)).await.is_err(), "ids are unique");
    assert!(s.create_upload(&UploadRow { repository: key("missing"), ..up("u3", NOW) }).await.is_err());
    assert_eq!(s.count_uploads().await.unwrap(), 2);
    let got = s.get_upload("u1").await.unwrap().expect("u1");
    assert_eq!((got.id.as_str(), &got.repository, got.started_at), ("u1", &k, NOW));
    assert_eq!(got.cursor, UploadCursor { len: 0, state: b"init".to_vec() });
    assert_eq!(got.hash_state, None);
    assert!(s.get_upload("nope").await.unwrap().is_none());

    // Compare-and-set on len.
    let c1 = UploadCursor { len: 100, state: b"part1".to_vec() };
    assert!(s.record_upload_progress("u1", 0, &c1, b"hash100").await.unwrap());
    assert!(!s.record_upload_progress("u1", 0, &UploadCursor { len: 50, state: vec![] }, b"stale").await.unwrap());
    let c2 = UploadCursor { len: 250, state: vec![] };
    assert!(s.record_upload_progress("u1", 100, &c2, b"hash250").await.unwrap());
    assert!(!s.record_upload_progress("nope", 0, &c1, b"x").await.unwrap());
    let got = s.get_upload("u1").await.unwrap().expect("u1");
    assert_eq!(got.cursor, c2);
    assert_eq!(got.hash_state.as_deref(), Some(&b"hash250"[..]));

    // Two writers racing from the same length: exactly one wins.
    let s2 = f.second_node().await;
    let (one, two) = (UploadCursor { len: 1, state: vec![1] }, UploadCursor { len: 2, state: vec![2] });
    let (r1, r2) = tokio::join!(s.record_upload_progress("u2", 0, &one, b"a"), s2.record_upload_progress("u2", 0, &two, b"b"));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert!(r1 ^ r2, "exactly one append recorded: {r1} {r2}");
    let len = s.get_upload("u2").await.unwrap().expect("u2").cursor.len;
    assert_eq!(len, if r1 { 1 } else { 2 });

    let stale: Vec<String> = s.uploads_started_before(NOW + 5).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(stale, strings(&["u1"]));
    assert!(s.delete_upload("u1").await.unwrap());
    assert!(!s.delete_upload("u1").await.unwrap());
    assert_eq!(s.count_uploads().await.unwrap(), 1);
}

pub async fn scans(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    let a = push(s, &k, "a", "l", None, NOW).await;
    let b = push(s, &k, "b", "l", None, NOW).await;
    let scan = |status: &str| ImageScanRow {
        status: status.into(),
        description: Some("desc".into()),
        started_at: NOW,
        completed_at: None,
        vulndb_version: None,
        findings: None,
    };
    assert!(!s.put_image_scan(&k, &d("none"), &scan("IN_PROGRESS")).await.unwrap());
    assert!(!s.put_image_scan(&key("missing"), &a, &scan("IN_PROGRESS")).await.unwrap());
    assert!(s.put_image_scan(&k, &a, &scan("IN_PROGRESS")).await.unwrap());
    assert!(s.put_image_scan(&k, &b, &scan("IN_PROGRESS")).await.unwrap());
    let done = ImageScanRow {
        status: "COMPLETE".into(),
        description: None,
        started_at: NOW + 1,
        completed_at: Some(NOW + 2),
        vulndb_version: Some("2024-01".into()),
        findings: Some("{\"findings\":[]}".into()),
    };
    assert!(s.put_image_scan(&k, &a, &done).await.unwrap());
    let got = s.image_scan(&k, &a).await.unwrap().expect("scan");
    assert_eq!(
        (got.status, got.description, got.started_at, got.completed_at, got.vulndb_version, got.findings),
        (done.status.clone(), None, NOW + 1, Some(NOW + 2), done.vulndb_version.clone(), done.findings.clone())
    );
    assert!(s.image_scan(&k, &d("none")).await.unwrap().is_none());
    let mut many: Vec<(Digest, String)> =
        s.image_scans(&k, &[a.clone(), b.clone(), d("none")]).await.unwrap().into_iter().map(|(dg, r)| (dg, r.status)).collect();
    many.sort_by_key(|(dg, _)| dg.to_string());
    let mut want = vec![(a.clone(), "COMPLETE".to_string()), (b.clone(), "IN_PROGRESS".to_string())];
    want.sort_by_key(|(dg, _)| dg.to_string());
    assert_eq!(many, want);
    assert!(s.image_scans(&k, &[]).await.unwrap().is_empty());
    assert!(s.image_scans(&key("missing"), std::slice::from_ref(&a)).await.unwrap().is_empty());
    assert_eq!(s.scanned_images(Some("IN_PROGRESS")).await.unwrap(), vec![(k.clone(), b.clone())]);
    let all: Vec<Digest> = s.scanned_images(None).await.unwrap().into_iter().map(|(_, dg)| dg).collect();
    assert_eq!(all, sorted_digests(&[&a, &b]));

    assert_eq!(s.registry_scanning("123456789012", "us-east-1").await.unwrap(), None);
    s.set_registry_scanning("123456789012", "us-east-1", "{\"scanType\":\"BASIC\"}").await.unwrap();
    s.set_registry_scanning("123456789012", "us-east-1", "{\"scanType\":\"ENHANCED\"}").await.unwrap();
    assert_eq!(s.registry_scanning("123456789012", "us-east-1").await.unwrap().as_deref(), Some("{\"scanType\":\"ENHANCED\"}"));
    assert_eq!(s.registry_scanning("123456789012", "eu-west-1").await.unwrap(), None);
}

pub async fn identity(f: Fixture) {
    let s = &f.store;
    let arn = "arn:aws:iam::123456789012:user/alice";
    s.ensure_account("123456789012", NOW).await.unwrap();
    s.ensure_account("123456789012", NOW + 1).await.unwrap();
    assert!(s.create_user("123456789012", "alice", arn, NOW).await.unwrap());
    assert!(!s.create_user("123456789012", "alice", arn, NOW).await.unwrap());
    assert_eq!(s.user_account(arn).await.unwrap().as_deref(), Some("123456789012"));
    assert_eq!(s.user_account("arn:nobody").await.unwrap(), None);

    s.create_access_key("AKIAEXAMPLE", "secret", arn, NOW).await.unwrap();
    assert!(s.create_access_key("AKIAEXAMPLE", "other", arn, NOW).await.is_err());
    let ak = s.get_access_key("AKIAEXAMPLE").await.unwrap().expect("key");
    assert_eq!(
        (ak.access_key_id.as_str(), ak.secret.as_str(), ak.user_arn.as_str(), ak.account.as_str(), ak.active),
        ("AKIAEXAMPLE", "secret", arn, "123456789012", true)
    );
    assert!(s.get_access_key("AKIANONE").await.unwrap().is_none());

    s.put_user_policy(arn, "b-policy", "{\"b\":1}").await.unwrap();
    s.put_user_policy(arn, "a-policy", "{\"a\":1}").await.unwrap();
    s.put_user_policy(arn, "b-policy", "{\"b\":2}").await.unwrap();
    assert_eq!(
        s.user_policies(arn).await.unwrap(),
        vec![("a-policy".to_string(), "{\"a\":1}".to_string()), ("b-policy".to_string(), "{\"b\":2}".to_string())]
    );
    assert!(s.user_policies("arn:nobody").await.unwrap().is_empty());

    assert_eq!(s.console_password(arn).await.unwrap(), None);
    let state = |epoch, has_password| Some(ConsoleSessionState { epoch, has_password });
    assert_eq!(s.console_session_state(arn).await.unwrap(), state(0, false));
    assert!(s.set_console_password(arn, Some("$argon2id$v=19$x")).await.unwrap());
    assert_eq!(s.console_session_state(arn).await.unwrap(), state(1, true), "a password change ends sessions");
    assert!(s.end_console_sessions(arn).await.unwrap());
    assert_eq!(s.console_session_state(arn).await.unwrap(), state(2, true));
    assert!(!s.end_console_sessions("arn:nobody").await.unwrap());
    assert_eq!(s.console_session_state("arn:nobody").await.unwrap(), None);
    assert_eq!(s.console_password(arn).await.unwrap().as_deref(), Some("$argon2id$v=19$x"));
    assert!(s.set_console_password(arn, None).await.unwrap());
    assert_eq!(s.console_password(arn).await.unwrap(), None);
    assert!(!s.set_console_password("arn:nobody", Some("x")).await.unwrap());
    assert_eq!(s.console_password("arn:nobody").await.unwrap(), None);

    assert_eq!(s.current_signing_key_created().await.unwrap(), None, "no key before the first start");
    assert_eq!(s.signing_keys(b"first", NOW).await.unwrap(), vec![b"first".to_vec()]);
    assert_eq!(s.signing_keys(b"second", NOW).await.unwrap(), vec![b"first".to_vec()], "the first key stays");
    assert_eq!(s.current_signing_key_created().await.unwrap(), Some(NOW));
    s.rotate_signing_key(b"third", NOW + 5000, 2).await.unwrap();
    assert_eq!(s.current_signing_key_created().await.unwrap(), Some(NOW + 5000), "the newest key's age");
}

pub async fn leases(f: Fixture) {
    let s = &f.store;
    assert!(s.try_lease("gc", "node-a", NOW, NOW + 100).await.unwrap());
    assert!(s.try_lease("gc", "node-a", NOW + 50, NOW + 150).await.unwrap(), "renewal by the holder");
    assert!(!s.try_lease("gc", "node-b", NOW + 120, NOW + 220).await.unwrap(), "held until NOW+150");
    assert!(!s.try_lease("gc", "node-b", NOW + 150, NOW + 250).await.unwrap(), "not expired at its end");
    assert!(s.try_lease("lifecycle", "node-b", NOW, NOW + 100).await.unwrap(), "another name");
    assert!(s.try_lease("gc", "node-b", NOW + 151, NOW + 251).await.unwrap(), "taken over after expiry");
    assert!(!s.try_lease("gc", "node-a", NOW + 200, NOW + 300).await.unwrap());
    s.release_lease("gc", "node-a").await.unwrap(); // not the holder: no effect
    assert!(!s.try_lease("gc", "node-a", NOW + 200, NOW + 300).await.unwrap());
    s.release_lease("gc", "node-b").await.unwrap();
    assert!(s.try_lease("gc", "node-a", NOW + 200, NOW + 300).await.unwrap(), "free after release");

    // Two nodes racing for a free lease: exactly one gets it.
    let s2 = f.second_node().await;
    let (a, b) = tokio::join!(s.try_lease("race", "node-a", NOW, NOW + 10), s2.try_lease("race", "node-b", NOW, NOW + 10));
    assert!(a.unwrap() ^ b.unwrap());
}

pub async fn jobs(f: Fixture) {
    let s = &f.store;
    assert!(s.enqueue_job("scan", "app@m1", r#"{"n":1}"#, NOW).await.unwrap());
    assert!(!s.enqueue_job("scan", "app@m1", r#"{"n":2}"#, NOW).await.unwrap(), "idempotent by (kind, key)");
    assert!(s.enqueue_job("scan", "app@m2", "{}", NOW + 1_000).await.unwrap());
    assert!(s.enqueue_job("webhook", "app@m1", "{}", NOW).await.unwrap(), "another kind, another job");

    // Only due jobs of the kinds asked for; the first payload stands.
    let got = s.claim_jobs(&["scan"], "node-a", NOW, NOW + 100, 10).await.unwrap();
    assert_eq!(got.iter().map(|j| (j.key.as_str(), j.payload.as_str(), j.attempts)).collect::<Vec<_>>(), [("app@m1", r#"{"n":1}"#, 1)]);
    let m1 = &got[0];
    assert_eq!((m1.status, m1.holder.as_deref(), m1.lease_until), (JobStatus::Running, Some("node-a"), Some(NOW + 100)));
    assert!(!s.enqueue_job("scan", "app@m1", "{}", NOW).await.unwrap(), "a running job is not enqueued again");
    assert!(s.claim_jobs(&["scan"], "node-b", NOW + 50, NOW + 150, 10).await.unwrap().is_empty(), "leased to node-a");

    // The lease ends: another holder takes the job over, and the first can no longer finish it.
    let taken = s.claim_jobs(&["scan"], "node-b", NOW + 101, NOW + 2_000, 1).await.unwrap();
    assert_eq!(taken.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(), [(m1.id, 2)]);
    assert!(!s.complete_job(m1.id, "node-a").await.unwrap(), "the lease moved to node-b");
    assert!(!s.fail_job(m1.id, "node-a", "late", None).await.unwrap());

    // A failure with a retry time makes it pending again from then; without, it is given up.
    assert!(s.fail_job(m1.id, "node-b", "bucket unreachable", Some(NOW + 5_000)).await.unwrap());
    let due = s.claim_jobs(&["scan"], "node-b", NOW + 1_000, NOW + 2_000, 10).await.unwrap();
    assert_eq!(due.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(), ["app@m2"], "m1 waits for its retry time");
    assert!(s.complete_job(due[0].id, "node-b").await.unwrap());
    let retried = s.claim_jobs(&["scan"], "node-a", NOW + 5_000, NOW + 6_000, 10).await.unwrap();
    assert_eq!(
        retried.iter().map(|j| (j.id, j.attempts, j.last_error.as_deref())).collect::<Vec<_>>(),
        [(m1.id, 3, Some("bucket unreachable"))]
    );
    assert!(s.fail_job(m1.id, "node-a", "broken", None).await.unwrap());
    assert!(s.claim_jobs(&["scan"], "node-a", NOW + 99_000, NOW + 99_100, 10).await.unwrap().is_empty(), "given up");
    let failed = s.list_jobs(Some(JobStatus::Failed), 10).await.unwrap();
    assert_eq!(failed.iter().map(|j| (j.key.as_str(), j.last_error.as_deref())).collect::<Vec<_>>(), [("app@m1", Some("broken"))]);
    let mut counts = s.count_jobs().await.unwrap();
    counts.sort();
    assert_eq!(counts, [("scan".to_string(), JobStatus::Failed, 1), ("webhook".to_string(), JobStatus::Pending, 1)]);
    // Enqueued again, a failed job starts over.
    assert!(s.enqueue_job("scan", "app@m1", r#"{"n":3}"#, NOW).await.unwrap());
    let again = s.list_jobs(Some(JobStatus::Pending), 10).await.unwrap();
    let m1 = again.iter().find(|j| j.kind == "scan").expect("pending again");
    assert_eq!((m1.attempts, m1.payload.as_str(), m1.last_error.as_deref()), (0, r#"{"n":3}"#, None));

    // A restart gives back the node's own claims only: node-b's stays node-b's.
    let a = s.claim_jobs(&["scan"], "node-a", NOW, NOW + 10_000, 1).await.unwrap();
    let b = s.claim_jobs(&["webhook"], "node-b", NOW, NOW + 10_000, 1).await.unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    let restarted = f.reopen().await;
    assert_eq!(restarted.requeue_own_jobs("node-a").await.unwrap(), 1);
    let running = restarted.list_jobs(Some(JobStatus::Running), 10).await.unwrap();
    assert_eq!(running.iter().map(|j| (j.kind.as_str(), j.holder.as_deref())).collect::<Vec<_>>(), [("webhook", Some("node-b"))]);
    assert_eq!(restarted.claim_jobs(&["scan", "webhook"], "node-a", NOW, NOW + 10, 10).await.unwrap().len(), 1, "only the requeued one");
    drop(restarted);

    // Two holders racing for the same due jobs: each job goes to exactly one of them.
    for i in 0..20 {
        s.enqueue_job("race", &format!("k{i}"), "{}", NOW).await.unwrap();
    }
    let s2 = f.second_node().await;
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    loop {
        let (a, b) =
            tokio::join!(s.claim_jobs(&["race"], "node-a", NOW, NOW + 10, 3), s2.claim_jobs(&["race"], "node-b", NOW, NOW + 10, 3));
        let (a, b) = (a.unwrap(), b.unwrap());
        if a.is_empty() && b.is_empty() {
            break;
        }
        a_ids.extend(a.iter().map(|j| j.id));
        b_ids.extend(b.iter().map(|j| j.id));
    }
    let mut all: Vec<i64> = a_ids.iter().chain(&b_ids).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 20, "every job claimed");
    assert_eq!(a_ids.len() + b_ids.len(), 20, "none claimed twice");
}

pub async fn keys(f: Fixture) {
    let s = &f.store;
    let row = |id: &str, account: &str, doc: &str, revision: i64| KeyRow {
        key_id: id.into(),
        account: account.into(),
        region: "us-east-1".into(),
        doc: doc.into(),
        revision,
    };
    assert!(s.create_key(&row("k2", "123456789012", "{\"v\":1}", 0)).await.unwrap());
    assert!(!s.create_key(&row("k2", "123456789012", "{}", 0)).await.unwrap(), "an id is created once");
    assert!(s.create_key(&row("k1", "123456789012", "{}", 0)).await.unwrap());
    assert!(s.create_key(&row("k3", "210987654321", "{}", 0)).await.unwrap());
    let listed = s.list_keys("123456789012", "us-east-1", None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(), ["k1", "k2"], "one account, id order");
    assert_eq!(s.list_keys("123456789012", "us-east-1", Some("k1"), 10).await.unwrap().len(), 1);
    // Optimistic updates: the revision read must still be the stored one.
    assert!(s.update_key(&row("k2", "123456789012", "{\"v\":2}", 0)).await.unwrap());
    assert!(!s.update_key(&row("k2", "123456789012", "{\"v\":3}", 0)).await.unwrap(), "a stale revision changes nothing");
    let k2 = s.get_key("k2").await.unwrap().expect("k2");
    assert_eq!((k2.doc.as_str(), k2.revision), ("{\"v\":2}", 1));
    assert!(s.get_key("nope").await.unwrap().is_none());

    let alias = |name: &str, key: &str, at: Millis| AliasRow { alias: name.into(), key_id: key.into(), created: at, updated: at };
    assert!(s.put_alias("123456789012", "us-east-1", &alias("alias/app", "k1", NOW), false).await.unwrap());
    assert!(!s.put_alias("123456789012", "us-east-1", &alias("alias/app", "k2", NOW), false).await.unwrap(), "exists");
    assert!(!s.put_alias("123456789012", "us-east-1", &alias("alias/none", "k2", NOW), true).await.unwrap(), "nothing to repoint");
    assert!(s.put_alias("123456789012", "us-east-1", &alias("alias/app", "k2", NOW + 5), true).await.unwrap());
    let got = s.get_alias("123456789012", "us-east-1", "alias/app").await.unwrap().expect("alias");
    assert_eq!((got.key_id.as_str(), got.created, got.updated), ("k2", NOW, NOW + 5));
    assert!(s.get_alias("210987654321", "us-east-1", "alias/app").await.unwrap().is_none(), "aliases are per account");
    assert!(s.put_alias("123456789012", "us-east-1", &alias("alias/b", "k1", NOW), false).await.unwrap());
    let names: Vec<String> = s.list_aliases("123456789012", "us-east-1").await.unwrap().into_iter().map(|a| a.alias).collect();
    assert_eq!(names, ["alias/app", "alias/b"]);
    assert!(s.delete_alias("123456789012", "us-east-1", "alias/b").await.unwrap());
    assert!(!s.delete_alias("123456789012", "us-east-1", "alias/b").await.unwrap());
}

pub async fn reopen_keeps_data(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "app").await;
    push(s, &k, "m", "l", Some("v1"), NOW).await;
    assert_eq!(s.signing_keys(b"key", NOW).await.unwrap(), vec![b"key".to_vec()]);
    // Migrations are idempotent: a restart (twice) finds the schema current and the rows intact.
    let again = f.reopen().await;
    let again = {
        drop(again);
        f.reopen().await
    };
    assert_eq!(again.get_manifest_by_tag(&k, "v1").await.unwrap().expect("tag").digest, d("m"));
    assert_eq!(again.signing_keys(b"other", NOW).await.unwrap(), vec![b"key".to_vec()]);
    let k2 = repo(&again, "second").await;
    assert!(again.get_repository(&k2).await.unwrap().expect("new").id > again.get_repository(&k).await.unwrap().expect("old").id);
}

/// Two handles (two nodes on PostgreSQL) push different manifests onto one tag at once, round
/// after round: each push succeeds, and the tag ends on one of them, consistently everywhere.
pub async fn racing_put_manifest(f: Fixture) {
    let s1 = f.store.clone();
    let s2 = f.second_node().await;
    let k = repo(&s1, "app").await;
    s1.link_blob(&k, &d("l"), 1, NOW).await.unwrap();
    let layer = vec![reference(d("l"), RefKind::Blob, 1)];
    for round in 0..15 {
        let (c1, c2) = (format!("one-{round}"), format!("two-{round}"));
        let (r1, r2) = tokio::join!(
            s1.put_manifest(NewManifest {
                repository: &k,
                manifest: manifest(&c1, NOW),
                references: layer.clone(),
                tags: vec![("latest", TagMove::Move)],
                outbox: Vec::new()
            }),
            s2.put_manifest(NewManifest {
                repository: &k,
                manifest: manifest(&c2, NOW),
                references: layer.clone(),
                tags: vec![("latest", TagMove::Move)],
                outbox: Vec::new()
            }),
        );
        assert!(matches!(r1.unwrap(), PutManifestOutcome::Stored { inserted: true, restored: false }));
        assert!(matches!(r2.unwrap(), PutManifestOutcome::Stored { inserted: true, restored: false }));
        let via1 = s1.get_manifest_by_tag(&k, "latest").await.unwrap().expect("tag").digest;
        let via2 = s2.get_manifest_by_tag(&k, "latest").await.unwrap().expect("tag").digest;
        assert_eq!(via1, via2);
        assert!(via1 == d(&c1) || via1 == d(&c2));

        // Immutable tag: of two different manifests exactly one gets the tag, and the other
        // push writes nothing.
        let tag = format!("v{round}");
        let (r1, r2) = tokio::join!(
            s1.put_manifest(NewManifest {
                repository: &k,
                manifest: manifest(&format!("im1-{round}"), NOW),
                references: layer.clone(),
                tags: vec![(&tag, TagMove::CreateOnly)],
                outbox: Vec::new()
            }),
            s2.put_manifest(NewManifest {
                repository: &k,
                manifest: manifest(&format!("im2-{round}"), NOW),
                references: layer.clone(),
                tags: vec![(&tag, TagMove::CreateOnly)],
                outbox: Vec::new()
            }),
        );
        let winner = s1.get_manifest_by_tag(&k, &tag).await.unwrap().expect("tag").digest;
        let (loser_out, loser) = match (r1.unwrap(), r2.unwrap()) {
            (PutManifestOutcome::Stored { inserted: true, .. }, out) => {
                assert_eq!(winner, d(&format!("im1-{round}")));
                (out, d(&format!("im2-{round}")))
            }
            (out, PutManifestOutcome::Stored { inserted: true, .. }) => {
                assert_eq!(winner, d(&format!("im2-{round}")));
                (out, d(&format!("im1-{round}")))
            }
            other => panic!("no single winner: {other:?}"),
        };
        match loser_out {
            PutManifestOutcome::TagExists(existing) => assert_eq!(existing, winner),
            other => panic!("{other:?}"),
        }
        assert!(s1.get_manifest_by_digest(&k, &loser).await.unwrap().is_none(), "the loser wrote nothing");
    }
    assert_eq!(s1.list_tags(&k, None, 100).await.unwrap().len(), 16);
}

/// GC forgetting a blob while a push references it: either the push wins (and the blob stays
/// linked) or GC wins (and the push reports the reference missing), never both.
pub async fn racing_gc_and_push(f: Fixture) {
    let s1 = f.store.clone();
    let s2 = f.second_node().await;
    let k = repo(&s1, "app").await;
    for round in 0..15 {
        let layer = d(&format!("layer-{round}"));
        s1.link_blob(&k, &layer, 1, NOW).await.unwrap();
        let content = format!("m-{round}");
        let (gc, pushed) = tokio::join!(
            s1.gc_forget_blob(&layer, NOW + 10),
            s2.put_manifest(NewManifest {
                repository: &k,
                manifest: manifest(&content, NOW),
                references: vec![reference(layer.clone(), RefKind::Blob, 1)],
                tags: vec![],
                outbox: Vec::new()
            }),
        );
        match (gc.unwrap(), pushed.unwrap()) {
            (false, PutManifestOutcome::Stored { inserted: true, .. }) => {
                assert_eq!(s1.repository_blob(&k, &layer).await.unwrap(), Some(1));
                assert!(!s1.gc_forget_blob(&layer, NOW + 10).await.unwrap(), "now referenced");
            }
            (true, PutManifestOutcome::MissingReference(missing, RefKind::Blob)) => {
                assert_eq!(missing, layer);
                assert!(s1.get_manifest_by_digest(&k, &d(&content)).await.unwrap().is_none());
            }
            other => panic!("inconsistent outcome: {other:?}"),
        }
    }
}

/// A lifecycle expiry racing a push that moves the image's tag away: either the expiry ran
/// first (image gone, tag now on the new image) or it saw the change and kept the image.
pub async fn racing_expire_and_push(f: Fixture) {
    let s1 = f.store.clone();
    let s2 = f.second_node().await;
    let k = repo(&s1, "app").await;
    s1.link_blob(&k, &d("l"), 1, NOW).await.unwrap();
    let layer = vec![(d("l"), RefKind::Blob)];
    let layer_ref = vec![reference(d("l"), RefKind::Blob, 1)];
    for round in 0..15 {
        let (old, new) = (format!("old-{round}"), format!("new-{round}"));
        let tag = format!("t{round}");
        put(&s1, &k, manifest(&old, NOW), layer.clone(), Some((&tag, TagMove::Move))).await;
        let old_digest = d(&old);
        let (expired, pushed) = tokio::join!(
            s1.expire_manifest(&k, &old_digest, std::slice::from_ref(&tag)),
            s2.put_manifest(NewManifest {
                repository: &k,
                manifest: manifest(&new, NOW),
                references: layer_ref.clone(),
                tags: vec![(&tag, TagMove::Move)],
                outbox: Vec::new()
            }),
        );
        assert!(matches!(pushed.unwrap(), PutManifestOutcome::Stored { inserted: true, .. }));
        assert_eq!(s1.get_manifest_by_tag(&k, &tag).await.unwrap().expect("tag").digest, d(&new));
        let old_there = s1.get_manifest_by_digest(&k, &d(&old)).await.unwrap().is_some();
        match expired.unwrap() {
            ExpireOutcome::Expired(gone) => {
                assert_eq!(gone, vec![d(&old)]);
                assert!(!old_there);
            }
            ExpireOutcome::Changed => assert!(old_there),
            other => panic!("{other:?}"),
        }
    }
}
