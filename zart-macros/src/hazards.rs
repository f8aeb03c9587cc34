//! The replay-hazard scan: calls in a task function's body that give another answer, or do
//! their work again, each time the workflow replays, when they are made outside a step.
//!
//! The scan reads tokens, so it sees paths as they are written (`SystemTime::now`,
//! `tokio::spawn`, inside macro calls too) and skips the arguments of `.step(..)`,
//! `.step_with_retry(..)` and `.step_with_timeout(..)` calls, whose bodies are recorded. It does
//! not resolve names: a function imported under another name is not seen.
//!
//! Stable Rust has no API for a proc macro to emit a warning, so each hazard becomes a use of a
//! `#[deprecated]` constant whose note is the advice, spanned on the user's call: rustc prints
//! a `deprecated` warning there (`#[zart_durable(allow_replay_hazards)]` turns the scan off).

use proc_macro2::{Delimiter, Ident, Spacing, Span, TokenStream, TokenTree};
use quote::quote_spanned;

/// Method calls whose arguments are step bodies, recorded and replayed.
const STEP_METHODS: &[&str] = &["step", "step_with_retry", "step_with_timeout"];

/// Advice for reading a clock outside a step.
const CLOCK: &str = "reads the clock again on every replay, so a resumed run sees another \
                     time; read it inside a step (`ctx.step(\"now\", ..)`) so replays get the \
                     recorded value, or wait with `ctx.sleep` / `ctx.sleep_until`";
/// Advice for randomness outside a step.
const RANDOM: &str = "draws another value on every replay; draw it inside a step \
                      (`ctx.step(\"pick\", ..)`) so replays get the recorded value";
/// Advice for spawning outside a step.
const SPAWN: &str = "starts work that is not recorded and starts again on every replay; run \
                     concurrent work as steps with `ctx.wait_all(Parallel::new().step(..))`, or \
                     as a workflow of its own with `ctx.child`";
/// Advice for sleeping outside a step.
const SLEEP: &str = "holds a worker slot and starts over on every replay; use \
                     `ctx.sleep(name, duration)`, which is durable and frees the worker";

/// One call found outside a step.
pub(crate) struct Hazard {
    /// The call as written, e.g. `SystemTime::now`.
    what: String,
    /// Why it is a problem and what to use instead.
    advice: &'static str,
    /// Where to point: the last segment of the path.
    span: Span,
}

/// Finds the hazards in `body`, outside step bodies.
pub(crate) fn scan(body: TokenStream) -> Vec<Hazard> {
    let mut found = Vec::new();
    scan_into(body, &mut found);
    found
}

fn scan_into(stream: TokenStream, found: &mut Vec<Hazard>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(dot) if dot.as_char() == '.' => {
                let is_step = matches!(tokens.get(i + 1),
                    Some(TokenTree::Ident(m)) if STEP_METHODS.iter().any(|s| m == s));
                i += 1;
                if is_step {
                    // Skip the method name, any turbofish, and the argument list.
                    while i < tokens.len() {
                        let is_args = matches!(&tokens[i],
                            TokenTree::Group(g) if g.delimiter() == Delimiter::Parenthesis);
                        i += 1;
                        if is_args {
                            break;
                        }
                    }
                }
            }
            TokenTree::Ident(_) => {
                let (segments, span, next) = path_at(&tokens, i);
                if let Some((what, advice)) = classify(&segments) {
                    found.push(Hazard { what, advice, span });
                }
                i = next;
            }
            TokenTree::Group(group) => {
                scan_into(group.stream(), found);
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// The path starting at `tokens[start]` (idents joined by `::`): its segments, the span of
/// its last segment, and the index after it.
fn path_at(tokens: &[TokenTree], start: usize) -> (Vec<String>, Span, usize) {
    let mut segments = Vec::new();
    let mut span = Span::call_site();
    let mut i = start;
    while let Some(TokenTree::Ident(ident)) = tokens.get(i) {
        segments.push(ident.to_string());
        span = ident.span();
        i += 1;
        let colons = matches!(
            (tokens.get(i), tokens.get(i + 1)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
        );
        if !colons || !matches!(tokens.get(i + 2), Some(TokenTree::Ident(_))) {
            break;
        }
        i += 2;
    }
    (segments, span, i)
}

/// The hazard a path stands for, if any.
fn classify(segments: &[String]) -> Option<(String, &'static str)> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ends = |suffix: &[&str]| s.ends_with(suffix);
    let advice = if ends(&["SystemTime", "now"])
        || ends(&["Instant", "now"])
        || ends(&["Utc", "now"])
        || ends(&["Local", "now"])
        || ends(&["OffsetDateTime", "now_utc"])
    {
        CLOCK
    } else if s.first() == Some(&"rand") && s.len() > 1
        || s.last() == Some(&"thread_rng")
        || ends(&["Uuid", "new_v4"])
    {
        RANDOM
    } else if ends(&["tokio", "spawn"])
        || ends(&["tokio", "task", "spawn"])
        || ends(&["tokio", "task", "spawn_blocking"])
        || ends(&["thread", "spawn"])
    {
        SPAWN
    } else if ends(&["tokio", "time", "sleep"])
        || ends(&["tokio", "time", "sleep_until"])
        || ends(&["thread", "sleep"])
    {
        SLEEP
    } else {
        return None;
    };
    Some((s.join("::"), advice))
}

/// A `deprecated` warning at each hazard, as items to put beside the generated code.
pub(crate) fn warnings(hazards: &[Hazard]) -> TokenStream {
    hazards
        .iter()
        .map(|hazard| {
            let note = format!(
                "`{}` outside a step {} (or allow it with #[zart_durable(allow_replay_hazards)])",
                hazard.what, hazard.advice
            );
            let name = Ident::new("replay_hazard", hazard.span);
            quote_spanned! {hazard.span=>
                const _: () = {
                    #[deprecated(note = #note)]
                    #[allow(non_upper_case_globals)]
                    const replay_hazard: () = ();
                    #name
                };
            }
        })
        .collect()
}
