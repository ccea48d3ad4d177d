//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) and the kept crash reproducers
//! (`fuzz/artifacts-kept/<target>/`) through the fuzz targets' own bodies, so that
//! `cargo test` checks every input the fuzzer ever kept without libFuzzer or nightly.
//! `make fuzz` grows the corpora; see docs/testing.md.

#[path = "../../../fuzz/src/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir/<target>`, in name order; none when the directory is missing.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of every target; a panic fails the test naming the file.
fn replay(dir: &str) -> usize {
    let mut n = 0;
    for target in &harness::TARGETS {
        for file in inputs(dir, target.name) {
            let data = match std::fs::read(&file) {
                Ok(data) => data,
                // A running fuzzer replaces inputs by smaller ones as it goes.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("read {}: {e}", file.display()),
            };
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "{} panicked on {} (reproduce: cd fuzz && cargo fuzz run {} {})",
                target.name,
                file.display(),
                target.name,
                file.display()
            );
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_input_is_decoded_or_refused_without_a_panic() {
    let n = replay("corpus");
    // The committed corpora hold the seeds at least: an empty run would prove nothing.
    assert!(n > 0, "no corpus under {}", fuzz_dir().display());
    for target in &harness::TARGETS {
        assert!(
            !inputs("corpus", target.name).is_empty(),
            "the corpus of {} is empty",
            target.name
        );
    }
}

#[test]
fn every_kept_crash_reproducer_is_decoded_or_refused_without_a_panic() {
    replay("artifacts-kept");
}
