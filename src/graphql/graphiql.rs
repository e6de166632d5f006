//! The GraphiQL page at `GET /graphql`, with everything it loads served from the binary.
//!
//! The scripts and styles are the npm packages `react@18.3.1`, `react-dom@18.3.1` and
//! `graphiql@4.1.2`, committed under `assets/graphiql/` (their licences beside them) and
//! embedded at build time, so the page works on a network that reaches nothing else and loads
//! no code from a third party. The page's own start-up script is a file too, so the page's
//! Content-Security-Policy needs no inline script.

use axum::{
    extract::Path,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use crate::{error::ErrorCode, http::Problem};

/// The files the page loads from `/graphiql/{file}`: name, content type, bytes.
pub const ASSETS: [(&str, &str, &[u8]); 5] = [
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    ("start.js", "text/javascript", START.as_bytes()),
];

/// Mounts GraphiQL on the page, pointed at this server's `/graphql`.
const START: &str = r#"const fetcher = GraphiQL.createFetcher({
  url: new URL('/graphql', window.location.origin).toString(),
});
const defaultQuery = `# Log in with the \`login\` mutation, then put the token in the
# Headers tab: {"Authorization": "Bearer <accessToken>"}
query Me {
  me { id email name profile { bio profilePhotoPath } }
}
`;
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, { fetcher, defaultQuery, defaultEditorToolsVisibility: true }),
);
"#;

/// The page. "Loading…" shows until the scripts run; `noscript` says why it may stay.
pub const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>nta-user-svc GraphiQL</title>
  <link rel="stylesheet" href="/graphiql/graphiql.min.css">
  <script src="/graphiql/react.production.min.js" defer></script>
  <script src="/graphiql/react-dom.production.min.js" defer></script>
  <script src="/graphiql/graphiql.min.js" defer></script>
  <script src="/graphiql/start.js" defer></script>
</head>
<body style="margin: 0; height: 100vh; overflow: hidden">
  <div id="graphiql" style="height: 100vh">Loading…</div>
  <noscript>GraphiQL needs JavaScript. The API itself is at POST /graphql.</noscript>
</body>
</html>
"#;

/// `GET /graphiql/{file}`: one of [`ASSETS`], from the binary.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return Problem::new(ErrorCode::NotFound, "Not Found").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        *bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        for (name, _, bytes) in ASSETS {
            assert!(PAGE.contains(&format!("\"/graphiql/{name}\"")) || name.ends_with(".css"));
            assert!(bytes.len() > 100, "{name}");
        }
        assert!(PAGE.contains("href=\"/graphiql/graphiql.min.css\""));
        assert!(!PAGE.contains("https://"));
        assert!(!PAGE.contains("<script>"), "no inline script");
    }
}
