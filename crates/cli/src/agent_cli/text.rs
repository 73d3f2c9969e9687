//! The two output forms Serf's commands print: aligned columns and indented JSON.

use serde::Serialize;

/// Print one line on stdout. Serf's commands print their errors on stdout as well, so this
/// is the only output path; a closed stdout is not worth a panic.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Rows as columns two spaces apart, each cell padded to its column's widest cell except a
/// row's last; the whole block trimmed at both ends (Serf's column layout, whose only
/// trailing spaces are those of an empty last cell on a row that is not the last).
pub fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
            line
        })
        .collect();
    lines.join("\n").trim().to_string()
}

/// JSON as Go's `json.MarshalIndent(v, "", "  ")` writes it: two-space indent, HTML
/// characters escaped (`musubi_gocompat::json`).
pub fn go_json<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string_pretty(value).expect("JSON values always encode");
    musubi_gocompat::json::escape_html(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn columns_pad_all_but_the_last_cell_and_trim_the_block() {
        let text = columns(&rows(&[
            &["s1", "127.0.0.1:53946", "alive", "role=web"],
            &["s2", "127.0.0.1:53947", "alive", ""],
            &["s3", "127.0.0.1:53948", "failed", ""],
        ]));
        assert_eq!(
            text,
            "s1  127.0.0.1:53946  alive   role=web\n\
             s2  127.0.0.1:53947  alive   \n\
             s3  127.0.0.1:53948  failed"
        );
        assert_eq!(columns(&[]), "");
    }

    #[test]
    fn json_escapes_html_characters_as_go_does() {
        let value = serde_json::json!({"a": "<b>&", "empty": {}, "list": []});
        assert_eq!(
            go_json(&value),
            "{\n  \"a\": \"\\u003cb\\u003e\\u0026\",\n  \"empty\": {},\n  \"list\": []\n}"
        );
    }
}
