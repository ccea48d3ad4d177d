//! The fuzz targets' bodies, shared with the corpus regression test
//! (`crates/cart-proto/tests/fuzz_corpus.rs` includes `harness.rs` by path), so the
//! fuzzer and `cargo test` feed an input to exactly the same code.

pub mod harness;
