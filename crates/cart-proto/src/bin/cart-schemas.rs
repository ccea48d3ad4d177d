//! Writes the JSON Schemas of the wire's JSON bodies (`make schemas`), or with `--check`
//! says whether the committed ones still match the types.
//!
//!   cart-schemas [--check] [DIR]     DIR defaults to docs/schemas

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from("docs/schemas");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: cart-schemas [--check] [DIR]   (DIR: docs/schemas)");
                return ExitCode::SUCCESS;
            }
            _ => dir = PathBuf::from(arg),
        }
    }
    let outcome = if check {
        cart_proto::schema::check_dir(&dir).map(|problems| {
            for p in &problems {
                eprintln!("cart-schemas: {p}");
            }
            if !problems.is_empty() {
                eprintln!("cart-schemas: run `make schemas` and commit docs/schemas");
            }
            problems.is_empty()
        })
    } else {
        cart_proto::schema::write_dir(&dir).map(|()| {
            println!("cart-schemas: wrote {}", dir.display());
            true
        })
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cart-schemas: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
