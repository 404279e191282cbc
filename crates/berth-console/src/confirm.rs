//! The confirmation step every destructive action takes (the convention of deleting images):
//! the first POST shows what will be lost; the same form posted again with `confirm=yes` acts.

use berth_core::Repo;
use maud::{html, Markup};

use crate::repo::{crumbs, describe, header, Tab};
use crate::view::{self, Nav, Page};
use crate::web::{PageResult, Post, Session};

/// What a confirmation page says and posts.
pub struct Confirm<'a> {
    /// The question, e.g. "Delete the lifecycle policy?".
    pub heading: &'a str,
    /// What will be lost, in plain words (and the thing itself when it can be shown).
    pub lost: Markup,
    /// The action's URL (posted again with `confirm=yes`).
    pub action: &'a str,
    /// The action's own fields, posted again unchanged.
    pub fields: Vec<(&'a str, String)>,
    pub cancel: &'a str,
    pub button: &'a str,
}

/// Has the person seen the confirmation page and confirmed?
pub fn confirmed(post: &Post) -> bool {
    post.form.get("confirm") == Some("yes")
}

pub fn section(s: &Session, c: &Confirm) -> Markup {
    html! {
        section.card.danger-zone aria-labelledby="confirm-h" #confirm {
            h2 #confirm-h { (c.heading) }
            (c.lost)
            p { "This cannot be undone." }
            form #confirm-form method="post" action=(c.action) {
                (view::csrf(s))
                input type="hidden" name="confirm" value="yes";
                @for (k, v) in &c.fields { input type="hidden" name=(k) value=(v); }
                div.form-actions {
                    a.btn href=(c.cancel) { "Cancel" }
                    button.btn.btn-danger type="submit" { (c.button) }
                }
            }
        }
    }
}

/// A confirmation page inside a repository's tab.
pub async fn repo_page(s: &Session, repo: &Repo, tab: Tab, c: Confirm<'_>) -> PageResult {
    let row = describe(s, repo).await?;
    let body = html! {
        (header(s, repo, &row, tab).await)
        (section(s, &c))
    };
    let page = Page { title: c.heading, nav: Nav::Repositories, crumbs: crumbs(repo, Some(c.heading)), notice: None, body };
    Ok(view::render(s, page).await)
}

/// Deleting a repository: what goes with it, then its name typed to confirm (the settings page
/// and the repositories list both post this to `…/-/delete`). `images`: how many it holds, when
/// the caller may see them (a count past the limit shows with "+").
pub fn delete_repository(s: &Session, repo: &Repo, images: Option<(usize, bool)>, error: Option<&str>, cancel: Option<&str>) -> Markup {
    html! {
        p { "Deleting " code { (repo.name) } " removes its settings, policies and tags. A repository that still holds images is deleted only with "
            strong { "force" } ", which deletes its images too. This cannot be undone." }
        @if let Some((n, more)) = images {
            @if n > 0 { p data-image-count=(n) { "It holds " strong { (view::count(n as u64, "image", "images")) @if more { "+" } } "." } }
        }
        form method="post" action={"/console/repo/" (repo.name) "/-/delete"} {
            (view::csrf(s))
            div.choice {
                input #force type="checkbox" name="force" value="on";
                label for="force" { "Force: also delete every image in the repository" }
            }
            div.field {
                label for="confirm_name" { "To confirm, type the repository name " code { (repo.name) } }
                input #confirm_name name="confirm_name" required autocomplete="off" spellcheck="false" autocapitalize="off"
                    pattern=(crate::settings::pattern_literal(repo.name.as_str())) data-invalid-message="Type the repository name exactly to confirm.";
            }
            @if let Some(e) = error { p.error-text role="alert" { (e) } }
            div.form-actions {
                @if let Some(c) = cancel { a.btn href=(c) { "Cancel" } }
                button.btn.btn-danger type="submit" { "Delete repository" }
            }
        }
    }
}
