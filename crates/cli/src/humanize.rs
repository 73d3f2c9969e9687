//! go-humanize's `Bytes`, which etcdctl prints sizes with (`endpoint status`, `snapshot
//! status`): SI units, one decimal below 10.

pub fn bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let exp = ((size as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (size as f64 / 1000f64.powi(exp as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exp])
    } else {
        format!("{value:.0} {}", UNITS[exp])
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_read_as_go_humanize_writes_them() {
        assert_eq!(bytes(5), "5 B");
        assert_eq!(bytes(82), "82 B");
        assert_eq!(bytes(1234), "1.2 kB");
        assert_eq!(bytes(1500), "1.5 kB");
        assert_eq!(bytes(20_480), "20 kB");
        assert_eq!(bytes(2_500_000), "2.5 MB");
        assert_eq!(bytes(25_210_880), "25 MB");
    }
}
