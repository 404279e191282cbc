//! Sign-in (access key pair or console password) and sign-out.

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use berth_core::console_auth::ConsoleCredentials;
use berth_core::RegistryError;
use http::{header, HeaderValue, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;

use crate::view;
use crate::web::{see_other, AnonymousPost, App, Fail, Post};

#[derive(Deserialize, Default)]
pub struct SigninQuery {
    next: Option<String>,
    expired: Option<String>,
    signedout: Option<String>,
}

/// Where to go after sign-in: only console pages (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.starts_with("/console/signin")
                && !n.contains("//")
                && !n.contains('\\')
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/console/repositories".to_string(),
    }
}

#[derive(Default)]
struct Filled<'a> {
    method: &'a str,
    access_key_id: &'a str,
    account: &'a str,
    user: &'a str,
    next: &'a str,
    error: Option<String>,
    info: Option<&'a str>,
}

fn form(f: &Filled<'_>) -> Markup {
    let key_error = f.error.as_deref().filter(|_| f.method != "password");
    let pw_error = f.error.as_deref().filter(|_| f.method == "password");
    html! {
        section.signin {
            h1 { "Sign in to berth" }
            p.lede { "Use an access key pair, or the console password an administrator set with "
                code { "berth admin set-console-password" } "." }
            @if let Some(i) = f.info { div.notice.ok role="status" { (i) } }
            div.signin-grid {
                form.card method="post" action="/console/signin" aria-labelledby="key-h" {
                    h2 #key-h { "Access key" }
                    input type="hidden" name="method" value="key";
                    input type="hidden" name="next" value=(f.next);
                    @if let Some(e) = key_error { (view::alert(e)) }
                    div.field {
                        label for="access_key_id" { "Access key ID" }
                        input #access_key_id name="access_key_id" required autocomplete="username" spellcheck="false"
                            autocapitalize="off" value=(f.access_key_id) autofocus[f.method != "password"];
                    }
                    div.field {
                        label for="secret_access_key" { "Secret access key" }
                        input #secret_access_key type="password" name="secret_access_key" required autocomplete="current-password";
                    }
                    button.btn.btn-primary type="submit" { "Sign in" }
                }
                form.card method="post" action="/console/signin" aria-labelledby="pw-h" {
                    h2 #pw-h { "Console password" }
                    input type="hidden" name="method" value="password";
                    input type="hidden" name="next" value=(f.next);
                    @if let Some(e) = pw_error { (view::alert(e)) }
                    div.field {
                        label for="account" { "Account ID" }
                        input #account name="account" required inputmode="numeric" pattern="[0-9]{12}"
                            title="The 12-digit account ID" value=(f.account) autocomplete="organization";
                    }
                    div.field {
                        label for="user" { "User name" }
                        input #user name="user" required autocomplete="username" autocapitalize="off" spellcheck="false" value=(f.user)
                            autofocus[f.method == "password"];
                    }
                    div.field {
                        label for="password" { "Password" }
                        input #password type="password" name="password" required autocomplete="current-password";
                    }
                    button.btn.btn-primary type="submit" { "Sign in" }
                }
            }
        }
    }
}

pub async fn page(Query(q): Query<SigninQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let info = if q.expired.is_some() {
        Some("Your session has ended. Sign in again to continue.")
    } else if q.signedout.is_some() {
        Some("You have signed out.")
    } else {
        None
    };
    let filled = Filled { next: &next, info, ..Default::default() };
    Html(view::bare("Sign in", form(&filled)).into_string()).into_response()
}

pub async fn submit(State(app): State<App>, post: AnonymousPost) -> Response {
    let f = &post.form;
    let method = if f.get("method") == Some("password") { "password" } else { "key" };
    let next = safe_next(f.get("next"));
    let (key_id_in, account_in, user_in) = (f.text("access_key_id"), f.text("account"), f.text("user"));
    let credentials = if method == "password" {
        ConsoleCredentials::Password { account: &account_in, user: &user_in, password: f.get("password").unwrap_or("") }
    } else {
        ConsoleCredentials::AccessKey { access_key_id: &key_id_in, secret: f.get("secret_access_key").unwrap_or("") }
    };
    let issued = app.registry.console_sign_in(credentials, post.transport).await;
    let login = login_facts(&app, &issued, post.transport, method, &account_in, &key_id_in).await;
    let mut response = match issued {
        Ok((value, expires_at)) => {
            let max_age = (expires_at - app.registry.now() / 1000).max(0);
            let mut resp = see_other(&next);
            if let Ok(v) = HeaderValue::from_str(&app.session_cookie(Some((&value, max_age)))) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            let (status, message) = match &e {
                RegistryError::Unauthenticated(_) => {
                    (StatusCode::UNAUTHORIZED, "The access key, user name or password is wrong. Check them and try again.".to_string())
                }
                other => (crate::web::status_of(other), crate::web::message_of(other)),
            };
            let filled = Filled {
                method,
                access_key_id: &key_id_in,
                account: &account_in,
                user: &user_in,
                next: &next,
                error: Some(message),
                info: None,
            };
            (status, Html(view::bare("Sign in", form(&filled)).into_string())).into_response()
        }
    };
    response.extensions_mut().insert(login.0);
    if let Some(error) = login.1 {
        response.extensions_mut().insert(error);
    }
    response
}

/// The audit record of a sign-in (CloudTrail's ConsoleLogin): who signed in, or, on failure,
/// the account and access key id given (never what was typed as the user, which may be a
/// password), responseElements `{"ConsoleLogin": "Success" | "Failure"}`.
async fn login_facts(
    app: &App,
    issued: &Result<(String, i64), RegistryError>,
    transport: berth_core::auth::Transport,
    method: &str,
    account: &str,
    key_id: &str,
) -> (berth_core::observe::CallFacts, Option<berth_core::observe::CallError>) {
    let mut facts = berth_core::observe::CallFacts { action: "signin:ConsoleLogin".into(), ..Default::default() };
    let outcome = match issued {
        Ok((session, _)) => {
            if let Ok(p) = app.registry.authenticate_console_session(session, transport).await {
                facts.caller(&p);
            }
            "Success"
        }
        Err(_) => "Failure",
    };
    if outcome == "Failure" {
        let default = &app.registry.config().default_registry.account;
        facts.account =
            Some(if method == "password" && berth_core::addressing::is_account_id(account) { account } else { default }.to_string());
        if method != "password" && key_id.len() <= 128 && key_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            facts.access_key_id = Some(key_id.to_string()).filter(|k| !k.is_empty());
        }
    }
    facts.response_elements = Some(serde_json::json!({ "ConsoleLogin": outcome }));
    let error = (outcome == "Failure").then(|| berth_core::observe::CallError::new("Failed authentication", "Failed authentication"));
    (facts, error)
}

/// Ends the session server-side first (a copied cookie must stop working too), then clears it.
pub async fn signout(State(app): State<App>, post: Post) -> Response {
    if let Err(e) = app.registry.end_console_sessions(&post.session.principal).await {
        return Fail::from(e).into_response();
    }
    let mut resp = see_other("/console/signin?signedout=1");
    if let Ok(v) = HeaderValue::from_str(&app.session_cookie(None)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(safe_next(Some("/console/repo/team/app")), "/console/repo/team/app");
        for bad in
            ["https://evil.example/", "//evil.example/console/", "/console//evil", "/other", "/console/signin?next=x", "/console/\\x"]
        {
            assert_eq!(safe_next(Some(bad)), "/console/repositories", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/repositories");
    }
}
