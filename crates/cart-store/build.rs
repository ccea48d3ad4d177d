// `sqlx::migrate!` embeds the migrations at compile time; without this, adding a
// migration file rebuilds nothing, and a binary without it refuses a database that has it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
