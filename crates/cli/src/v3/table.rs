//! `-w table`: the boxed tables etcdctl 3.4 draws with tablewriter for `member list` and
//! `endpoint status|health|hashkv`: headers centred, cells right-aligned.

/// The table of `header` over `rows`, ready to print.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = rule.clone();
    for (h, w) in header.iter().zip(&widths) {
        let pad = w - h.chars().count();
        let left = pad / 2;
        out.push_str(&format!(
            "| {}{h}{} ",
            " ".repeat(left),
            " ".repeat(pad - left)
        ));
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!("| {cell:>w$} ", w = w));
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn headers_are_centred_and_cells_right_aligned() {
        let table = render(&["ID", "NAME"], &[vec!["2e12".into(), "e1".into()]]);
        assert_eq!(
            table,
            "+------+------+\n|  ID  | NAME |\n+------+------+\n| 2e12 |   e1 |\n+------+------+\n"
        );
    }
}
