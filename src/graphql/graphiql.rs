//! The GraphiQL page at `GET /graphql`.
//!
//! By default the page loads React and GraphiQL from a public CDN (pinned versions). An
//! air-gapped deployment sets `GRAPHIQL_ASSETS_DIR` to a folder holding the four files below
//! (from the npm packages `react@18.3.1`, `react-dom@18.3.1` and `graphiql@4.1.2`); the page
//! then loads them from `/graphiql/{file}`, served from that folder.

use std::path::PathBuf;

use axum::{
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use crate::{error::ErrorCode, rest::Problem, startup::AppState};

/// The files the page needs: local name, CDN address, content type.
pub const ASSETS: [(&str, &str, &str); 4] = [
    (
        "react.production.min.js",
        "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
        "text/javascript",
    ),
    (
        "react-dom.production.min.js",
        "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
        "text/javascript",
    ),
    (
        "graphiql.min.js",
        "https://unpkg.com/graphiql@4.1.2/graphiql.min.js",
        "text/javascript",
    ),
    (
        "graphiql.min.css",
        "https://unpkg.com/graphiql@4.1.2/graphiql.min.css",
        "text/css",
    ),
];

const DEFAULT_QUERY: &str = "# Log in with the `login` mutation, then put the token in the
# Headers tab: {\"Authorization\": \"Bearer <accessToken>\"}
query Me {
  me { id email name profile { bio profilePhotoPath } }
}
";

/// The page, with asset addresses local (`/graphiql/…`) or on the CDN.
pub fn page(local_assets: bool) -> String {
    let src = |name: &str| {
        let (local, cdn, _) = ASSETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("known asset");
        if local_assets {
            format!("/graphiql/{local}")
        } else {
            (*cdn).to_owned()
        }
    };
    let cross_origin = if local_assets { "" } else { " crossorigin" };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>nta-user-svc GraphiQL</title>
  <style>body {{ margin: 0; height: 100vh; overflow: hidden; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="{css}"{cross_origin}>
  <script src="{react}"{cross_origin}></script>
  <script src="{react_dom}"{cross_origin}></script>
  <script src="{graphiql}"{cross_origin}></script>
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script>
    const fetcher = GraphiQL.createFetcher({{ url: new URL('/graphql', window.location.origin).toString() }});
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {default_query},
        defaultEditorToolsVisibility: true,
      }})
    );
  </script>
</body>
</html>
"#,
        css = src("graphiql.min.css"),
        react = src("react.production.min.js"),
        react_dom = src("react-dom.production.min.js"),
        graphiql = src("graphiql.min.js"),
        default_query = serde_json::Value::from(DEFAULT_QUERY),
    )
}

/// `GET /graphiql/{file}`: one of the four assets from `GRAPHIQL_ASSETS_DIR`.
pub async fn asset(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let not_found = || Problem::new(ErrorCode::NotFound, "Not Found").into_response();
    let (Some(dir), Some((name, _, content_type))) = (
        state.graphiql_assets.as_deref(),
        ASSETS.iter().find(|(name, _, _)| *name == file),
    ) else {
        return not_found();
    };
    let path: PathBuf = dir.join(name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "GraphiQL asset missing");
            not_found()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_points_at_the_cdn_or_at_local_copies() {
        let cdn = page(false);
        assert!(cdn.contains("https://unpkg.com/graphiql@4.1.2/graphiql.min.js"));
        let local = page(true);
        assert!(local.contains("src=\"/graphiql/graphiql.min.js\""));
        assert!(!local.contains("unpkg"));
    }
}
