//! Go's `path.Clean`, as etcd applies it to keys (the store) and to request paths (its Go
//! client's `pathutil.CanonicalURLPath`).

/// `path.Clean("/" + path)`: one leading `/`, no empty, `.` or `..` segments (`..` at the
/// root stays at the root), no trailing `/`; `/` for nothing at all.
pub fn clean_rooted(path: &str) -> String {
    if is_clean_rooted(path) {
        return path.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    out
}

/// Whether [`clean_rooted`] leaves `path` as it is. Checked without allocating: nearly
/// every key and request path is clean already, and both are cleaned on every request.
pub fn is_clean_rooted(path: &str) -> bool {
    path == "/"
        || path
            .strip_prefix('/')
            .is_some_and(|rest| rest.split('/').all(|s| !matches!(s, "" | "." | "..")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_as_go_cleans_them_under_the_root() {
        for (path, clean) in [
            ("", "/"),
            ("/", "/"),
            ("a", "/a"),
            ("//a//b/", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/../a", "/a"),
            ("/a/b/../../..", "/"),
            ("/a/...", "/a/..."),
        ] {
            assert_eq!(clean_rooted(path), clean, "{path:?}");
            assert_eq!(is_clean_rooted(path), path == clean, "{path:?}");
            assert!(is_clean_rooted(clean), "{clean:?}");
        }
    }
}
