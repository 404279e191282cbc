//! Catalog texts (aboutText, usageText) are Markdown written by whoever may put catalog data,
//! shown to anyone: rendered with pulldown-cmark, then sanitized with ammonia, so no script,
//! no raw HTML beyond ammonia's safe subset, and links only to http, https and mailto URLs.

use std::collections::HashSet;
use std::sync::LazyLock;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.url_schemes(HashSet::from(SCHEMES))
        // Relative URLs would resolve against the gallery, where they mean nothing.
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"));
    b
});

const SCHEMES: [&str; 3] = ["http", "https", "mailto"];

/// An absolute URL of an allowed scheme (relative URLs mean nothing on the gallery's pages).
fn allowed_url(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, _)| SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
}

/// Markdown to sanitized HTML. Raw HTML in the Markdown is shown as text, not markup: the
/// sanitizer would let its harmless subset through, and catalog authors get Markdown only.
pub fn render(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    // Links and images to anything but http, https and mailto lose their markup and keep their
    // text (ammonia would keep an `<a>` without `href`, which still looks like a link).
    // CommonMark links do not nest, so one flag per kind pairs each start with its end.
    let (mut in_bad_link, mut in_bad_image) = (false, false);
    let events = Parser::new_ext(markdown, options).filter_map(move |e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Some(Event::Text(h)),
        Event::Start(Tag::Link { ref dest_url, .. }) if !allowed_url(dest_url) => {
            in_bad_link = true;
            None
        }
        Event::End(TagEnd::Link) if in_bad_link => {
            in_bad_link = false;
            None
        }
        Event::Start(Tag::Image { ref dest_url, .. }) if !allowed_url(dest_url) => {
            in_bad_image = true;
            None
        }
        Event::End(TagEnd::Image) if in_bad_image => {
            in_bad_image = false;
            None
        }
        other => Some(other),
    });
    let mut html = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(&mut html, events);
    CLEANER.clean(&html).to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markdown_renders() {
        let html = render("# Title\n\nSome *emphasis* and `code`.\n\n```\ndocker run x\n```\n\n[docs](https://example.com/docs)");
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>emphasis</em>"), "{html}");
        assert!(html.contains("<code>docker run x\n</code>"), "{html}");
        assert!(html.contains(r#"<a href="https://example.com/docs" rel="noopener noreferrer nofollow">docs</a>"#), "{html}");
    }

    #[test]
    fn a_script_tag_is_text() {
        let html = render("before\n\n<script>alert(1)</script>\n\nafter <script>alert(2)</script>");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "shown as text: {html}");
    }

    #[test]
    fn a_javascript_link_is_no_link() {
        for md in ["[x](javascript:alert(1))", "[x](JavaScript:alert(1))", "<javascript:alert(1)>", "[x](jav&#x09;ascript:alert(1))"] {
            let html = render(md);
            assert!(!html.to_ascii_lowercase().contains("javascript:alert(1)\""), "{md}: {html}");
            assert!(!html.contains("href=\"javascript"), "{md}: {html}");
            assert!(!html.contains("href=") && !html.contains("<a"), "{md}: no link at all: {html}");
        }
    }

    #[test]
    fn raw_html_is_text() {
        let html = render(r#"<div onclick="alert(1)">hi</div> and <b>bold</b> <iframe src="https://evil"></iframe>"#);
        assert!(!html.contains("<div") && !html.contains("<b>") && !html.contains("<iframe"), "{html}");
        assert!(html.contains("&lt;div onclick="), "the attribute is text too: {html}");
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{html}");
    }

    #[test]
    fn an_image_with_a_javascript_source_has_no_source() {
        let html = render("![pic](javascript:alert(1)) ![ok](https://example.com/a.png) ![rel](/local.png)");
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("pic") && html.matches("<img").count() == 1, "the alt text stays, as text: {html}");
        assert!(html.contains(r#"src="https://example.com/a.png""#), "{html}");
        assert!(!html.contains("/local.png\""), "relative URLs are dropped: {html}");
    }

    #[test]
    fn other_schemes_are_dropped_and_mailto_kept() {
        assert!(!render("[d](data:text/html;base64,PHNjcmlwdD4=)").contains("href"));
        assert!(!render("[v](vbscript:msgbox)").contains("href"));
        assert!(render("[m](mailto:team@example.com)").contains(r#"href="mailto:team@example.com""#));
    }
}
