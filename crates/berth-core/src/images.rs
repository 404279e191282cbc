//! Images as the ECR API sees them: listings, batch get/delete, PutImage and
//! the layer-part upload protocol, built on the same manifest and upload
//! rules as `/v2/`.

use berth_store::{DeleteManifestOutcome, ImageFilter, ImageRow, StorageClass, TagStatus};
use bytes::Bytes;
use futures::StreamExt;

use crate::error::Result;
use crate::names::{Reference, Repo, Tag};
use crate::{Digest, Manifest, Registry, RegistryError};

/// ECR's minimum layer part size (every part but the last).
pub const MIN_LAYER_PART: u64 = 5 * 1024 * 1024;

/// An `ImageIdentifier`: a tag, a digest, or both.
#[derive(Debug, Clone, Default)]
pub struct ImageId {
    pub digest: Option<String>,
    pub tag: Option<String>,
}

/// Why one image of a batch failed (ECR's `ImageFailure.failureCode`).
#[derive(Debug, Clone)]
pub struct ImageFailure {
    pub id: ImageId,
    pub code: &'static str,
    pub reason: String,
}

#[derive(Debug)]
pub struct FoundImage {
    pub id: ImageId,
    pub manifest: Manifest,
}

enum Resolved {
    Found(Digest, Option<String>),
    Failed(ImageFailure),
}

/// One page of images in push order, and the token of the next page.
#[derive(Debug)]
pub struct ImagePage {
    pub images: Vec<ImageRow>,
    pub next: Option<String>,
}

/// How an image shown under another one relates to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A platform manifest the index lists (`os/architecture[/variant]`, "" when unstated).
    Platform(String),
    /// A referrer (signature, SBOM, …) whose subject is `of`: the image or one of its platforms.
    Referrer { of: Digest },
}

#[derive(Debug, Clone)]
pub struct NestedImage {
    pub image: ImageRow,
    pub relation: Relation,
}

/// A page position: `<pushed-at millis>:<digest>` of the last image shown.
fn page_token(row: &ImageRow) -> String {
    format!("{}:{}", row.pushed_at, row.digest)
}

fn parse_page_token(token: &str) -> Result<(i64, Digest)> {
    let bad = || RegistryError::invalid(format!("Invalid page token {token:?}"));
    let (at, digest) = token.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, digest.parse().map_err(|_| bad())?))
}

/// `os/architecture[/variant]` of an index entry.
fn platform_of(entry: &serde_json::Value) -> String {
    let Some(p) = entry.get("platform") else { return String::new() };
    let f = |k: &str| p.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    [f("os"), f("architecture"), f("variant")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/")
}

/// Whether a manifest document states its own non-empty `mediaType` (a document that is not
/// JSON is left to the manifest parser to refuse).
fn names_media_type(manifest: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct View {
        #[serde(rename = "mediaType")]
        media_type: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<View>(manifest) {
        Ok(v) => v.media_type.is_some_and(|m| m.as_str().is_none_or(|s| !s.is_empty())),
        Err(_) => true,
    }
}

impl Registry {
    /// DescribeImages without imageIds. `storage`: None = any storage class.
    pub async fn images(
        &self,
        repo: &Repo,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>> {
        self.existing_repository(repo).await?;
        self.flush_pulls().await?;
        Ok(self.meta.list_images(repo.key(), status, storage, after, limit).await?)
    }

    /// The repository's storage: each blob its images reference counted once, however many
    /// images share it (the sum of imageSizeInBytes would count a shared base layer per image).
    pub async fn repository_size(&self, repo: &Repo) -> Result<u64> {
        self.existing_repository(repo).await?;
        Ok(self.meta.repository_size(repo.key()).await?)
    }

    /// Images newest first (push time, then digest), as ECR's console lists them; `token` is
    /// the `next` of the page before. A search lists nested images too: whoever types a
    /// platform's digest wants to find it.
    pub async fn image_page(&self, repo: &Repo, filter: &ImageFilter<'_>, token: Option<&str>, limit: u32) -> Result<ImagePage> {
        let after = token.map(parse_page_token).transpose()?;
        self.existing_repository(repo).await?;
        self.flush_pulls().await?;
        let search = filter.search.map(str::to_lowercase).filter(|s| !s.is_empty());
        let filter = ImageFilter { search: search.as_deref(), top_level: filter.top_level && search.is_none(), ..*filter };
        let after_digest = after.as_ref().map(|(at, d)| (*at, d.to_string()));
        let mut images = self
            .meta
            .list_images_by_push(repo.key(), &filter, after_digest.as_ref().map(|(at, d)| (*at, d.as_str())), limit.saturating_add(1))
            .await?;
        let next = if images.len() > limit as usize {
            images.truncate(limit as usize);
            images.last().map(page_token)
        } else {
            None
        };
        Ok(ImagePage { images, next })
    }

    /// What is shown under an image: the platform manifests of an index (in the index's
    /// order), then the referrers of the image and of each platform.
    pub async fn nested_images(&self, repo: &Repo, parent: &ImageRow) -> Result<Vec<NestedImage>> {
        let mut out = Vec::new();
        let mut subjects = vec![parent.digest.clone()];
        if matches!(parent.media_type.as_str(), crate::media_types::OCI_INDEX | crate::media_types::DOCKER_LIST) {
            if let Some(m) = self.meta.get_manifest_by_digest(repo.key(), &parent.digest).await? {
                let doc: serde_json::Value = serde_json::from_slice(&m.content).unwrap_or_default();
                for entry in doc.get("manifests").and_then(serde_json::Value::as_array).into_iter().flatten() {
                    let Some(d) = entry.get("digest").and_then(serde_json::Value::as_str).and_then(|d| d.parse::<Digest>().ok()) else {
                        continue;
                    };
                    if let Some(image) = self.meta.get_image(repo.key(), &d).await? {
                        subjects.push(d);
                        out.push(NestedImage { image, relation: Relation::Platform(platform_of(entry)) });
                    }
                }
            }
        }
        for subject in subjects {
            for r in self.meta.list_referrers(repo.key(), &subject).await? {
                if let Some(image) = self.meta.get_image(repo.key(), &r.digest).await? {
                    out.push(NestedImage { image, relation: Relation::Referrer { of: subject.clone() } });
                }
            }
        }
        Ok(out)
    }

    /// ListImages: (digest, tag) pairs, "" for untagged images, after the `after` pair.
    pub async fn image_ids(
        &self,
        repo: &Repo,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>> {
        self.existing_repository(repo).await?;
        Ok(self.meta.list_image_ids(repo.key(), status, storage, after, limit).await?)
    }

    /// Resolves each identifier to an image digest, or says why not.
    async fn resolve(&self, repo: &Repo, id: &ImageId) -> Result<Resolved> {
        let fail = |code: &'static str, reason: String| Ok(Resolved::Failed(ImageFailure { id: id.clone(), code, reason }));
        let digest = match &id.digest {
            Some(d) => match d.parse::<Digest>() {
                Ok(d) => Some(d),
                Err(e) => return fail("InvalidImageDigest", e.to_string()),
            },
            None => None,
        };
        if let Some(t) = &id.tag {
            if Tag::parse(t).is_err() {
                return fail("InvalidImageTag", format!("Invalid image tag {t:?}"));
            }
        }
        match (digest, &id.tag) {
            (None, None) => fail("MissingDigestAndTag", "Requested image has neither a digest nor a tag".into()),
            (Some(d), None) => match self.meta.get_manifest_by_digest(repo.key(), &d).await? {
                Some(_) => Ok(Resolved::Found(d, None)),
                None => fail("ImageNotFound", "Requested image not found".into()),
            },
            (digest, Some(tag)) => match self.meta.get_manifest_by_tag(repo.key(), tag).await? {
                Some(m) if digest.as_ref().is_none_or(|d| *d == m.digest) => Ok(Resolved::Found(m.digest, Some(tag.clone()))),
                Some(_) => fail("ImageTagDoesNotMatchDigest", "Invalid image digest for the requested tag".into()),
                None => fail("ImageNotFound", "Requested image not found".into()),
            },
        }
    }

    /// DescribeImages with imageIds: details for each, failures for the rest.
    pub async fn describe_image_ids(&self, repo: &Repo, ids: &[ImageId]) -> Result<(Vec<ImageRow>, Vec<ImageFailure>)> {
        self.existing_repository(repo).await?;
        self.flush_pulls().await?;
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for id in ids {
            match self.resolve(repo, id).await? {
                Resolved::Found(d, _) => {
                    if let Some(row) = self.meta.get_image(repo.key(), &d).await? {
                        if !found.iter().any(|r: &ImageRow| r.digest == row.digest) {
                            found.push(row);
                        }
                    }
                }
                Resolved::Failed(f) => failures.push(f),
            }
        }
        Ok((found, failures))
    }

    /// BatchGetImage by `puller` (the caller's principal ARN, for pull time exclusions).
    /// `accepted`: media types the caller takes (empty: any).
    pub async fn batch_get_images(
        &self,
        repo: &Repo,
        ids: &[ImageId],
        accepted: &[String],
        puller: &str,
    ) -> Result<(Vec<FoundImage>, Vec<ImageFailure>)> {
        self.existing_repository(repo).await?;
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for id in ids {
            match self.resolve(repo, id).await? {
                Resolved::Found(d, tag) => {
                    let Some(row) = self.meta.get_manifest_by_digest(repo.key(), &d).await? else { continue };
                    if !accepted.is_empty() && !accepted.contains(&row.media_type) {
                        failures.push(ImageFailure {
                            id: id.clone(),
                            code: "UnsupportedImageType",
                            reason: format!("The image's media type {} is not among acceptedMediaTypes", row.media_type),
                        });
                        continue;
                    }
                    if row.storage_class == StorageClass::Archive {
                        failures.push(ImageFailure {
                            id: id.clone(),
                            code: "ImageNotFound",
                            reason: RegistryError::ImageArchived(d.to_string()).to_string(),
                        });
                        continue;
                    }
                    self.note_pull(repo, &d, Some(puller)).await;
                    found.push(FoundImage { id: ImageId { digest: Some(d.to_string()), tag }, manifest: row.into() });
                }
                Resolved::Failed(f) => failures.push(f),
            }
        }
        Ok((found, failures))
    }

    /// The digest an identifier names, or why not (as an error).
    pub(crate) async fn resolve_image(&self, repo: &Repo, id: &ImageId) -> Result<Digest> {
        self.existing_repository(repo).await?;
        match self.resolve(repo, id).await? {
            Resolved::Found(d, _) => Ok(d),
            Resolved::Failed(f) if f.code == "ImageNotFound" => {
                Err(RegistryError::image_not_found(repo, id.digest.as_deref(), id.tag.as_deref()))
            }
            Resolved::Failed(f) => Err(RegistryError::invalid(f.reason)),
        }
    }

    /// UpdateImageStorageClass: archives an image, or restores an archived one (at once: berth
    /// keeps archived bytes where they were, so there is no ACTIVATING period).
    pub async fn set_image_storage_class(&self, repo: &Repo, id: &ImageId, class: StorageClass) -> Result<(ImageId, StorageClass)> {
        let digest = self.resolve_image(repo, id).await?;
        if self.meta.set_storage_class(repo.key(), &digest, class, self.now()).await?.is_none() {
            return Err(RegistryError::image_not_found(repo, Some(&digest.to_string()), None));
        }
        self.caches.invalidate_repository_tags();
        tracing::info!(repository = %repo, digest = %digest, storage_class = class.as_str(), "image storage class changed");
        Ok((ImageId { digest: Some(digest.to_string()), tag: id.tag.clone() }, class))
    }

    /// BatchDeleteImage: a tag alone removes the tag (and the image when it was its last tag,
    /// as ECR does); a digest removes the image and all its tags.
    ///
    /// An image an index of the repository lists is not deleted (ECR's
    /// `ImageReferencedByManifestList`): the index would lose a platform. When that index is in
    /// the same request it is deleted first, whatever the order of the list, so deleting every
    /// untagged image together with the index works; refused images are retried after each
    /// pass that deleted something (indexes of indexes unwind one level per pass).
    pub async fn batch_delete_images(&self, repo: &Repo, ids: &[ImageId]) -> Result<(Vec<ImageId>, Vec<ImageFailure>)> {
        self.existing_repository(repo).await?;
        let (mut deleted, mut failures) = (Vec::new(), Vec::new());
        let mut pending = Vec::new();
        for id in ids {
            match self.resolve(repo, id).await? {
                Resolved::Found(d, tag) => pending.push((id, d, tag)),
                Resolved::Failed(f) => failures.push(f),
            }
        }
        loop {
            let mut refused = Vec::new();
            let before = deleted.len();
            for (id, d, tag) in pending {
                match self.delete_one(repo, id, &d, tag.clone()).await? {
                    Ok(gone) => deleted.extend(gone),
                    Err(index) => refused.push(((id, d, tag), index)),
                }
            }
            if refused.is_empty() || deleted.len() == before {
                for ((id, d, tag), index) in refused {
                    if let (Some(tag), None) = (tag, &id.digest) {
                        // The tag is gone as asked; the image stays as the index's platform.
                        deleted.push(ImageId { digest: Some(d.to_string()), tag: Some(tag) });
                        continue;
                    }
                    failures.push(ImageFailure {
                        id: id.clone(),
                        code: "ImageReferencedByManifestList",
                        reason: RegistryError::ImageReferencedByIndex { image: d, index }.to_string(),
                    });
                }
                break;
            }
            pending = refused.into_iter().map(|(p, _)| p).collect();
        }
        Ok((deleted, failures))
    }

    /// One image of a BatchDeleteImage: the identifiers it deleted, or the index that lists it.
    async fn delete_one(&self, repo: &Repo, id: &ImageId, d: &Digest, tag: Option<String>) -> Result<Result<Vec<ImageId>, Digest>> {
        let digest = Some(d.to_string());
        // The DELETE events are built inside each delete's transaction, from what it removed.
        let hooks = self.event_webhooks(repo).await;
        if let (Some(tag), None) = (&tag, &id.digest) {
            // A tag alone: untag, then delete the image if that was its last tag. An index that
            // lists the image keeps it (untagged); removing the tag itself never breaks an index.
            // A retry after the index went finds the tag already gone and deletes the image.
            self.meta.delete_tag_queueing(repo.key(), tag, self.now(), &self.tag_delete_outbox(&hooks, repo, tag)).await?;
            self.caches.invalidate_tag(repo.key(), tag);
            self.outbox_committed(&hooks);
            let image = self.meta.get_image(repo.key(), d).await?;
            if image.is_some_and(|i| i.tags.is_empty()) {
                if let DeleteManifestOutcome::ListedBy(index) = self.meta.delete_manifest(repo.key(), d).await? {
                    return Ok(Err(index));
                }
            }
            return Ok(Ok(vec![ImageId { digest, tag: Some(tag.clone()) }]));
        }
        let image = self.meta.get_image(repo.key(), d).await?;
        match self.meta.delete_manifest_queueing(repo.key(), d, self.now(), &self.manifest_delete_outbox(&hooks, repo, d)).await? {
            DeleteManifestOutcome::ListedBy(index) => return Ok(Err(index)),
            DeleteManifestOutcome::Deleted => self.outbox_committed(&hooks),
            DeleteManifestOutcome::NotFound => {}
        }
        self.caches.invalidate_repository_tags();
        Ok(Ok(match (tag, image) {
            (Some(t), _) => vec![ImageId { digest, tag: Some(t) }],
            (None, Some(img)) if !img.tags.is_empty() => {
                img.tags.into_iter().map(|t| ImageId { digest: digest.clone(), tag: Some(t) }).collect()
            }
            _ => vec![ImageId { digest, tag: None }],
        }))
    }

    /// The indexes of the repository that list this image (a delete of it would be refused
    /// while any of them stays).
    pub async fn indexes_listing(&self, repo: &Repo, digest: &Digest) -> Result<Vec<Digest>> {
        self.existing_repository(repo).await?;
        Ok(self.meta.manifest_parents(repo.key(), digest).await?)
    }

    /// PutImage: the same rules as a `/v2/` manifest PUT, plus ECR's own checks.
    pub async fn put_image(
        &self,
        repo: &Repo,
        manifest: Bytes,
        media_type: Option<&str>,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<(Digest, String)> {
        self.existing_repository(repo).await?;
        if media_type.is_none_or(str::is_empty) && !names_media_type(&manifest) {
            // PutImage has no Content-Type to fall back on, and ECR does not guess from the shape.
            return Err(RegistryError::invalid(
                "Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: 'The media type must be given in the manifest's mediaType or in imageManifestMediaType'",
            ));
        }
        let expected = digest.map(|d| d.parse::<Digest>().map_err(|e| RegistryError::invalid(e.to_string()))).transpose()?;
        let tag = tag.map(Tag::parse).transpose().map_err(|e| RegistryError::invalid(e.to_string()))?;
        // Checked against the digest the caller named, in its algorithm (sha256 by default).
        let actual = match &expected {
            Some(e) => Digest::of(e.algorithm(), &manifest),
            None => Digest::sha256_of(&manifest),
        };
        if let Some(e) = &expected {
            if *e != actual {
                return Err(RegistryError::ImageDigestMismatch(format!("the manifest's digest is {actual}, not {e}")));
            }
        }
        if let Some(t) = &tag {
            if let Some(existing) = self.meta.get_manifest_by_tag(repo.key(), t.as_str()).await? {
                if existing.digest == actual {
                    return Err(RegistryError::ImageAlreadyExists(format!(
                        "Image with digest '{actual}' and tag '{}' already exists in the repository with name '{repo}' in registry with id '{}'",
                        t.as_str(),
                        repo.key().account
                    )));
                }
            }
        }
        let reference = match tag {
            Some(t) => Reference::Tag(t),
            None => Reference::Digest(actual),
        };
        let stored = self.put_manifest(repo, &reference, media_type.unwrap_or(""), manifest).await?;
        Ok((stored.digest, stored.media_type))
    }

    /// BatchCheckLayerAvailability for one digest: its size if the repository has it.
    pub async fn layer_size(&self, repo: &Repo, digest: &Digest) -> Result<Option<u64>> {
        // A quarantined layer (or encrypted object that failed authentication) is reported
        // missing, so that clients push it again.
        match self.locate_blob(repo, digest).await {
            Ok((size, _)) => Ok(Some(size)),
            Err(RegistryError::BlobQuarantined(_) | RegistryError::BlobUnknown(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// InitiateLayerUpload (ECR's and ECR Public's): an upload session in an existing
    /// repository; the AWS APIs never create one on push (RepositoryNotFound instead).
    pub async fn initiate_layer_upload(&self, repo: &Repo) -> Result<crate::UploadStatus> {
        self.existing_repository(repo).await?;
        self.start_upload(repo).await
    }

    /// UploadLayerPart: appends `part` at `first_byte`. Every part but the last must be at
    /// least 5 MiB, which shows when the next part arrives.
    pub async fn upload_layer_part(&self, repo: &Repo, id: &str, first_byte: u64, last_byte: u64, part: Bytes) -> Result<u64> {
        if last_byte < first_byte || last_byte - first_byte + 1 != part.len() as u64 {
            return Err(RegistryError::InvalidLayerPart {
                message: format!("partFirstByte {first_byte} and partLastByte {last_byte} do not match the {} bytes sent", part.len()),
                last_valid: None,
            });
        }
        let previous_small = self.last_part_small(id);
        let status = self.upload_status(repo, id).await?;
        if status.offset != first_byte {
            return Err(RegistryError::InvalidLayerPart {
                message: format!("partFirstByte must be {} (the bytes received so far)", status.offset),
                last_valid: status.offset.checked_sub(1),
            });
        }
        if status.offset > 0 && previous_small {
            return Err(RegistryError::LayerPartTooSmall(format!(
                "Layer part size must be at least {MIN_LAYER_PART} bytes, except for the last part"
            )));
        }
        let len = part.len() as u64;
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(part) }).boxed();
        let st = self.append_upload(repo, id, Some(first_byte), body).await?;
        self.set_last_part_small(id, len < MIN_LAYER_PART);
        Ok(st.offset.saturating_sub(1))
    }

    /// CompleteLayerUpload with ECR's exceptions.
    pub async fn complete_layer_upload(&self, repo: &Repo, id: &str, digest: &Digest) -> Result<Digest> {
        let status = self.upload_status(repo, id).await?;
        if status.offset == 0 {
            return Err(RegistryError::EmptyUpload(format!("The upload with id '{id}' contains no layer parts")));
        }
        if self.layer_size(repo, digest).await?.is_some() {
            self.discard_upload(id).await?;
            return Err(RegistryError::LayerAlreadyExists(format!(
                "The layer '{digest}' already exists in the repository with name '{repo}'"
            )));
        }
        self.complete_upload(repo, id, digest, None, None).await
    }
}
