//! Compile tests of `#[zart_durable]`: every misuse fails with its message at the user's code
//! (`ui/*.rs`, expected output in the `.stderr` beside each), and the supported forms build and
//! run (`pass/*.rs`). The expected output depends on the rustc version; regenerate it with
//! `TRYBUILD=overwrite cargo test -p zart-macros --test ui` and read the diff.

#[test]
fn misuse_fails_at_the_users_code_and_good_forms_build() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
