//! The arguments of `#[zart_durable(..)]`: the task name, the struct name, the hazard opt-out.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

/// Longest task name the engine accepts, in bytes (`zart::limits`).
const MAX_NAME_BYTES: usize = 255;

/// What the attribute was given; every field is optional.
#[derive(Default)]
pub(crate) struct Args {
    /// `name = "..."`: the task name (default: the function's name).
    pub(crate) name: Option<LitStr>,
    /// `struct = Name`: the generated struct (default: the function's name in PascalCase).
    pub(crate) struct_name: Option<Ident>,
    /// `allow_replay_hazards`: no warnings for clocks, randomness, spawns outside steps.
    pub(crate) allow_replay_hazards: bool,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            if input.peek(Token![struct]) {
                let key: Token![struct] = input.parse()?;
                input.parse::<Token![=]>()?;
                if args.struct_name.is_some() {
                    return Err(syn::Error::new_spanned(key, "`struct` is given twice"));
                }
                args.struct_name = Some(input.parse()?);
            } else {
                let key: Ident = input.parse()?;
                match key.to_string().as_str() {
                    "name" => {
                        input.parse::<Token![=]>()?;
                        if args.name.is_some() {
                            return Err(syn::Error::new_spanned(key, "`name` is given twice"));
                        }
                        let name: LitStr = input.parse()?;
                        check_name(&name)?;
                        args.name = Some(name);
                    }
                    "allow_replay_hazards" => args.allow_replay_hazards = true,
                    _ => {
                        return Err(syn::Error::new_spanned(
                            key,
                            "unknown #[zart_durable] argument; expected `name = \"..\"`, \
                             `struct = Name` or `allow_replay_hazards`",
                        ))
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// Refuses, at compile time, a task name the engine would refuse at run time.
fn check_name(name: &LitStr) -> syn::Result<()> {
    let value = name.value();
    let problem = if value.is_empty() {
        Some("a task name cannot be empty".to_owned())
    } else if value.len() > MAX_NAME_BYTES {
        Some(format!(
            "a task name is at most {MAX_NAME_BYTES} bytes; this one is {}",
            value.len()
        ))
    } else if value.contains('\0') {
        Some("a task name cannot contain NUL".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => Err(syn::Error::new_spanned(name, message)),
        None => Ok(()),
    }
}

/// `onboarding_v2` -> `OnboardingV2`: the default struct name.
pub(crate) fn pascal_case(ident: &Ident) -> Ident {
    let snake = ident.to_string();
    let snake = snake.strip_prefix("r#").unwrap_or(&snake);
    let mut out = String::with_capacity(snake.len());
    for part in snake.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() {
        out.push_str("Task");
    }
    Ident::new(&out, ident.span())
}

/// The task name as a literal: the given one, or the function's name.
pub(crate) fn task_name(args: &Args, ident: &Ident) -> LitStr {
    match &args.name {
        Some(name) => name.clone(),
        None => {
            let name = ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
            LitStr::new(&name, ident.span())
        }
    }
}
