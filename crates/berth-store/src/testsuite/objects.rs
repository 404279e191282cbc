//! Blob objects per encryption scope: what links record, what GC may forget, what `berth
//! encrypt` still has to seal.

use super::*;

const KEY_A: &str = "arn:aws:kms:us-east-1:123456789012:key/aaaa";
const KEY_B: &str = "arn:aws:kms:us-east-1:123456789012:key/bbbb";

async fn repo_with(s: &Store, name: &str, encryption_type: EncryptionType, kms_key: Option<&str>) -> RepoKey {
    let k = key(name);
    let settings = RepositorySettings { encryption_type, kms_key: kms_key.map(str::to_string), ..settings() };
    s.create_repository(&k, &settings, &[], NOW).await.expect("create repository").expect("repository is new");
    k
}

fn object(digest: &Digest, scope: &str, size: u64) -> BlobObject {
    BlobObject { digest: digest.clone(), scope: scope.to_string(), size }
}

/// Sorted as the store pages them: digest, then scope.
fn sorted(mut v: Vec<BlobObject>) -> Vec<BlobObject> {
    v.sort_by(|a, b| (a.digest.to_string(), &a.scope).cmp(&(b.digest.to_string(), &b.scope)));
    v
}

/// Every page of a keyset listing, `limit` at a time.
async fn all_pages<F, Fut>(limit: u32, page: F) -> Vec<BlobObject>
where
    F: Fn(Option<(Digest, String)>) -> Fut,
    Fut: std::future::Future<Output = Vec<BlobObject>>,
{
    let mut out: Vec<BlobObject> = Vec::new();
    loop {
        let after = out.last().map(|o| (o.digest.clone(), o.scope.clone()));
        let got = page(after).await;
        assert!(got.len() <= limit as usize);
        let done = got.len() < limit as usize;
        out.extend(got);
        if done {
            return out;
        }
    }
}

pub async fn blob_objects_per_scope(f: Fixture) {
    let s = &f.store;
    // The scope SQL computes is the one Rust computes, for every encryption setting.
    let settings = [
        ("aes", EncryptionType::Aes256, None),
        ("kms", EncryptionType::Kms, Some(KEY_A)),
        ("dsse", EncryptionType::KmsDsse, Some(KEY_B)),
        ("kms-default", EncryptionType::Kms, None),
    ];
    for (name, encryption, kms_key) in settings {
        let k = repo_with(s, name, encryption, kms_key).await;
        let layer = d(&format!("only-{name}"));
        s.link_blob(&k, &layer, 5, NOW).await.unwrap();
        assert_eq!(s.blob_objects(&layer).await.unwrap(), vec![object(&layer, &storage_scope(encryption, kms_key), 5)], "{name}");
        let linked = s.repository_blob_object(&k, &layer).await.unwrap();
        assert_eq!(linked, Some(RepositoryBlobObject { size: 5, sealed: true, scope: storage_scope(encryption, kms_key) }), "{name}");
    }
    assert_eq!(storage_scope(EncryptionType::Kms, Some(KEY_A)), format!("kms:{KEY_A}"));

    // Another scope linking the same digest adds an object; linking again adds none.
    let (aes, kms) = (key("aes"), key("kms"));
    let shared = d("shared");
    s.link_blob(&aes, &shared, 9, NOW).await.unwrap();
    s.link_blob(&kms, &shared, 9, NOW + 1).await.unwrap();
    s.link_blob(&kms, &shared, 9, NOW + 2).await.unwrap();
    let both = vec![object(&shared, "aes256", 9), object(&shared, &format!("kms:{KEY_A}"), 9)];
    assert_eq!(s.blob_objects(&shared).await.unwrap(), both);
    assert_eq!(s.repository_blob_object(&key("dsse"), &shared).await.unwrap(), None, "not linked there");
    assert_eq!(s.repository_blob_object(&key("missing"), &shared).await.unwrap(), None);
    assert!(s.blob_objects(&d("unknown")).await.unwrap().is_empty());

    // Recording is idempotent, for any scope (a clear object, as `berth encrypt` finds them).
    s.record_blob_object(&shared, "", NOW).await.unwrap();
    s.record_blob_object(&shared, "", NOW + 5).await.unwrap();
    assert_eq!(s.blob_objects(&shared).await.unwrap().len(), 3);
    assert_eq!(s.blob_objects(&shared).await.unwrap()[0], object(&shared, "", 9), "scope order: clear first");

    // Listing pages by (digest, scope) and sees every object once.
    let everything = s.list_blob_objects(None, 100).await.unwrap();
    assert_eq!(everything.len(), 4 + 3);
    assert_eq!(everything, sorted(everything.clone()));
    for limit in [1, 2, 3] {
        let paged =
            all_pages(
                limit,
                |after| async move { s.list_blob_objects(after.as_ref().map(|(d, sc)| (d, sc.as_str())), limit).await.unwrap() },
            )
            .await;
        assert_eq!(paged, everything, "pages of {limit}");
    }

    // Forgetting a blob forgets its objects.
    s.link_blob(&aes, &d("free"), 3, NOW).await.unwrap();
    s.link_blob(&kms, &d("free"), 3, NOW).await.unwrap();
    assert_eq!(s.blob_objects(&d("free")).await.unwrap().len(), 2);
    assert!(s.gc_forget_blob(&d("free"), NOW + 50).await.unwrap());
    assert!(s.blob_objects(&d("free")).await.unwrap().is_empty());
    assert_eq!(s.list_blob_objects(None, 100).await.unwrap(), everything);
}

pub async fn gc_of_objects(f: Fixture) {
    let s = &f.store;
    let aes = repo_with(s, "aes", EncryptionType::Aes256, None).await;
    let kms = repo_with(s, "kms", EncryptionType::Kms, Some(KEY_A)).await;
    let kms2 = repo_with(s, "kms2", EncryptionType::Kms, Some(KEY_A)).await;
    let kms_scope = storage_scope(EncryptionType::Kms, Some(KEY_A));
    let layer = d("layer");
    push(s, &aes, "m-aes", "layer", None, NOW).await;
    push(s, &kms, "m-kms", "layer", None, NOW).await;
    s.link_blob(&kms2, &layer, 10, NOW).await.unwrap(); // linked, never referenced there
    assert!(s.gc_object_candidates(NOW + 50).await.unwrap().is_empty(), "both scopes reference it");

    // The KMS scope's manifests let go of the layer while the AES scope still holds on.
    assert_eq!(s.delete_manifest(&kms, &d("m-kms")).await.unwrap(), DeleteManifestOutcome::Deleted);
    assert!(s.gc_object_candidates(NOW).await.unwrap().is_empty(), "seen and stored at the cut-off, not before");
    assert_eq!(s.gc_object_candidates(NOW + 50).await.unwrap(), vec![object(&layer, &kms_scope, 10)]);
    assert!(s.gc_candidates(NOW + 50).await.unwrap().is_empty(), "the blob itself is still referenced");

    // A manifest of that scope referencing it again makes the forget refuse.
    let again = put(s, &kms2, manifest("m-kms2", NOW), vec![(layer.clone(), RefKind::Blob)], None).await;
    assert!(matches!(again, PutManifestOutcome::Stored { .. }), "{again:?}");
    assert!(!s.gc_forget_object(&layer, &kms_scope, NOW + 50).await.unwrap(), "needed again");
    assert_eq!(s.blob_objects(&layer).await.unwrap().len(), 2);
    assert_eq!(s.delete_manifest(&kms2, &d("m-kms2")).await.unwrap(), DeleteManifestOutcome::Deleted);

    // Nor may it forget what is needed, fresh, or unknown.
    assert!(!s.gc_forget_object(&layer, "aes256", NOW + 50).await.unwrap(), "the AES manifest references it");
    assert!(!s.gc_forget_object(&layer, &kms_scope, NOW).await.unwrap(), "not stale before the cut-off");
    assert!(!s.gc_forget_object(&d("unknown"), &kms_scope, NOW + 50).await.unwrap());
    assert!(!s.gc_forget_object(&layer, "dsse:none", NOW + 50).await.unwrap(), "no such object");

    // Forgetting removes the object and the links of its scope's repositories, no others.
    assert!(s.gc_forget_object(&layer, &kms_scope, NOW + 50).await.unwrap());
    assert_eq!(s.blob_objects(&layer).await.unwrap(), vec![object(&layer, "aes256", 10)]);
    assert_eq!(s.repository_blob(&kms, &layer).await.unwrap(), None);
    assert_eq!(s.repository_blob(&kms2, &layer).await.unwrap(), None);
    assert_eq!(s.repository_blob(&aes, &layer).await.unwrap(), Some(10));
    assert!(!s.gc_forget_object(&layer, &kms_scope, NOW + 50).await.unwrap(), "already forgotten");
    assert!(s.gc_object_candidates(NOW + 50).await.unwrap().is_empty());

    // A blob no manifest references is the whole-blob GC's, not an object candidate.
    assert_eq!(s.delete_manifest(&aes, &d("m-aes")).await.unwrap(), DeleteManifestOutcome::Deleted);
    assert!(s.gc_object_candidates(NOW + 50).await.unwrap().is_empty());
    assert!(!s.gc_forget_object(&layer, "aes256", NOW + 50).await.unwrap());
    assert_eq!(s.gc_candidates(NOW + 50).await.unwrap().len(), 1);

    // Linking again in the forgotten scope records its object anew.
    s.link_blob(&kms, &layer, 10, NOW + 60).await.unwrap();
    assert_eq!(s.repository_blob_object(&kms, &layer).await.unwrap().map(|o| (o.size, o.sealed)), Some((10, true)));
}

/// Blobs written before encryption at rest: every blob has one clear ("") object and no link
/// is sealed, as the v7 migration leaves them.
async fn as_before_encryption(f: &Fixture) {
    f.backend.execute("DELETE FROM blob_objects").await;
    f.backend.execute("INSERT INTO blob_objects (digest, scope, stored_at) SELECT digest, '', created_at FROM blobs").await;
}

pub async fn clear_objects_and_unsealed_blobs(f: Fixture) {
    let s = &f.store;
    let aes = repo_with(s, "aes", EncryptionType::Aes256, None).await;
    let aes2 = repo_with(s, "aes2", EncryptionType::Aes256, None).await;
    let kms = repo_with(s, "kms", EncryptionType::Kms, Some(KEY_A)).await;
    let dsse = repo_with(s, "dsse", EncryptionType::KmsDsse, Some(KEY_B)).await;
    let kms_scope = storage_scope(EncryptionType::Kms, Some(KEY_A));
    let dsse_scope = storage_scope(EncryptionType::KmsDsse, Some(KEY_B));
    let (l1, l2, l3) = (d("l1"), d("l2"), d("l3"));
    push(s, &aes, "m-aes", "l1", None, NOW).await;
    push(s, &kms, "m-kms", "l1", None, NOW).await;
    push(s, &aes2, "m-aes2", "l2", None, NOW).await;
    s.link_blob(&aes2, &l1, 10, NOW).await.unwrap(); // same scope as `aes`: one unsealed entry
    s.link_blob(&dsse, &l1, 10, NOW).await.unwrap(); // linked, not referenced
    s.link_blob(&aes, &l3, 10, NOW).await.unwrap(); // referenced by nothing
    as_before_encryption(&f).await;

    assert_eq!(s.repository_blob_object(&aes, &l1).await.unwrap().map(|o| (o.size, o.sealed)), Some((10, false)));
    let mut unsealed = vec![
        object(&l1, "aes256", 10),
        object(&l1, &dsse_scope, 10),
        object(&l1, &kms_scope, 10),
        object(&l2, "aes256", 10),
        object(&l3, "aes256", 10),
    ];
    unsealed = sorted(unsealed);
    assert_eq!(s.unsealed_blobs(None, 100).await.unwrap(), unsealed);
    for limit in [1, 2] {
        let paged =
            all_pages(limit, |after| async move { s.unsealed_blobs(after.as_ref().map(|(d, sc)| (d, sc.as_str())), limit).await.unwrap() })
                .await;
        assert_eq!(paged, unsealed, "pages of {limit}");
    }
    // Only blobs still referenced are object candidates; l1's clear object is read by all.
    assert!(s.gc_object_candidates(NOW + 50).await.unwrap().is_empty());

    // Sealing one referencing scope is not enough: the KMS repository still reads the clear copy.
    s.record_blob_object(&l1, "aes256", NOW).await.unwrap();
    assert_eq!(s.repository_blob_object(&aes, &l1).await.unwrap().map(|o| (o.size, o.sealed)), Some((10, true)));
    assert_eq!(s.repository_blob_object(&aes2, &l1).await.unwrap().map(|o| (o.size, o.sealed)), Some((10, true)));
    unsealed.retain(|o| !(o.digest == l1 && o.scope == "aes256"));
    assert_eq!(s.unsealed_blobs(None, 100).await.unwrap(), unsealed);
    assert!(s.gc_object_candidates(NOW + 50).await.unwrap().is_empty());
    assert!(!s.gc_forget_object(&l1, "", NOW + 50).await.unwrap());

    // Once every referencing repository has its own object, the clear one is a candidate ...
    s.record_blob_object(&l1, &kms_scope, NOW).await.unwrap();
    assert_eq!(s.gc_object_candidates(NOW + 50).await.unwrap(), vec![object(&l1, "", 10)]);
    // ... until a repository without its own object references the digest.
    let pushed = put(s, &dsse, manifest("m-dsse", NOW), vec![(l1.clone(), RefKind::Blob)], None).await;
    assert!(matches!(pushed, PutManifestOutcome::Stored { .. }), "{pushed:?}");
    assert!(!s.gc_forget_object(&l1, "", NOW + 50).await.unwrap(), "the DSSE repository reads the clear copy");
    assert_eq!(s.delete_manifest(&dsse, &d("m-dsse")).await.unwrap(), DeleteManifestOutcome::Deleted);

    // Forgetting it removes the links that read it (the DSSE one, unreferenced), not the sealed ones.
    assert!(s.gc_forget_object(&l1, "", NOW + 50).await.unwrap());
    assert_eq!(s.blob_objects(&l1).await.unwrap(), vec![object(&l1, "aes256", 10), object(&l1, &kms_scope, 10)]);
    assert_eq!(s.repository_blob(&dsse, &l1).await.unwrap(), None);
    for k in [&aes, &aes2, &kms] {
        assert_eq!(s.repository_blob(k, &l1).await.unwrap(), Some(10), "{}", k.name);
    }
    assert_eq!(s.unsealed_blobs(None, 100).await.unwrap(), sorted(vec![object(&l2, "aes256", 10), object(&l3, "aes256", 10)]));
}

/// Rows a schema v6 database held (repository "app", blob "layer" linked in it), valid SQL on
/// both backends, for each backend's migration test; `v6_rows_after_v7` checks what schema v7
/// made of them.
pub fn v6_rows() -> String {
    let layer = d("layer");
    format!(
        "INSERT INTO repositories (id, account_id, region, name, created_at, tag_mutability, scan_on_push, encryption_type) \
         VALUES (1, '123456789012', 'us-east-1', 'app', 1, 'MUTABLE', '0', 'AES256'); \
         INSERT INTO blobs (digest, size, created_at, last_seen_at) VALUES ('{layer}', 42, 7, 9); \
         INSERT INTO repository_blobs (repository_id, digest) VALUES (1, '{layer}');"
    )
}

/// Blobs of the version before objects were stored in clear: each is a clear ("") object, and
/// its links are left for `berth encrypt` to seal.
pub async fn v6_rows_after_v7(s: &Store) {
    let layer = d("layer");
    assert_eq!(s.blob_objects(&layer).await.unwrap(), vec![object(&layer, "", 42)]);
    assert_eq!(
        s.repository_blob_object(&key("app"), &layer).await.unwrap(),
        Some(RepositoryBlobObject { size: 42, sealed: false, scope: "aes256".into() })
    );
    assert_eq!(s.unsealed_blobs(None, 10).await.unwrap(), vec![object(&layer, "aes256", 42)]);
}
