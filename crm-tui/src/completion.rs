//! Completion of file system paths for the import screen's Tab key.

use std::path::Path;

/// The paths that start with `typed`: entries of its directory whose name starts with
/// its last component, directories ending in `/`, sorted. Hidden entries appear only
/// when the typed name starts with a dot. `~/` stands for the home directory.
pub fn complete_path(typed: &str) -> Vec<String> {
    let typed = expand_home(typed);
    let (directory, prefix) = match typed.rfind('/') {
        Some(slash) => typed.split_at(slash + 1),
        None => ("", typed.as_str()),
    };
    let read_from = if directory.is_empty() {
        Path::new(".")
    } else {
        Path::new(directory)
    };
    let Ok(entries) = std::fs::read_dir(read_from) else {
        return Vec::new();
    };
    let mut candidates: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            let is_directory = entry.path().is_dir();
            Some(format!("{directory}{name}{}", if is_directory { "/" } else { "" }))
        })
        .collect();
    candidates.sort();
    candidates
}

fn expand_home(typed: &str) -> String {
    match (typed.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => typed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::complete_path;

    #[test]
    fn completes_files_and_directories_of_the_typed_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        for file in ["clients-2019.csv", "clients-2020.json", "other.csv", ".hidden"] {
            std::fs::write(dir.path().join(file), "").expect("write");
        }
        std::fs::create_dir(dir.path().join("clients-archive")).expect("mkdir");
        let base = format!("{}/", dir.path().display());
        assert_eq!(
            complete_path(&format!("{base}cli")),
            [
                format!("{base}clients-2019.csv"),
                format!("{base}clients-2020.json"),
                format!("{base}clients-archive/")
            ]
        );
        assert_eq!(complete_path(&format!("{base}oth")), [format!("{base}other.csv")]);
        assert_eq!(complete_path(&format!("{base}.h")), [format!("{base}.hidden")]);
        assert_eq!(complete_path(&base).len(), 4, "hidden entries stay hidden");
        assert!(complete_path(&format!("{base}missing/x")).is_empty());
    }
}
