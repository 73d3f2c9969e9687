//! Go's `path.Clean`, as etcd applies it to keys (the store) and to request paths (its Go
//! client's `pathutil.CanonicalURLPath`).

/// `path.Clean("/" + path)`: one leading `/`, no empty, `.` or `..` segments (`..` at the
/// root stays at the root), no trailing `/`; `/` for nothing at all.
pub fn clean_rooted(path: &str) -> String {
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
        }
    }
}
