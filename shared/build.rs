//! `sqlx::migrate!` embeds `../migrations` at compile time, but stable
//! Rust cannot tell cargo the macro read those files: without this, a
//! changed or added migration is silently left out of the next build.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
