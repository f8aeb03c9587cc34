//! Checks the function `#[zart_durable]` is put on and reads its input and output types.
//! Every refusal is a `syn::Error` spanned on the part of the user's code that is wrong.

use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Safety, Type, TypeParamBound,
};

/// The shape every task function has, as the error messages spell it.
const SHAPE: &str =
    "async fn name(ctx: &mut TaskContext<impl Scheduler>, data: Input) -> Result<Output, TaskError>";

/// What the generated code needs from the function.
pub(crate) struct TaskFn {
    /// The input type (`TaskHandler::Data`).
    pub(crate) data: Type,
    /// The output type (`TaskHandler::Output`): the `T` of `Result<T, TaskError>`.
    pub(crate) output: Type,
}

/// Checks `item` and returns its types, or every problem found, each at its place.
pub(crate) fn check(item: &ItemFn) -> syn::Result<TaskFn> {
    let sig = &item.sig;
    let mut errors = Errors::default();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!("#[zart_durable] needs an `async fn`: {SHAPE}"),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a #[zart_durable] function cannot be `const`",
        ));
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "a #[zart_durable] function cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a #[zart_durable] function cannot have an `extern` ABI",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a #[zart_durable] function cannot be generic: a task has one input type and one \
             output type (write the scheduler as `TaskContext<impl Scheduler>`)",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a #[zart_durable] function cannot be variadic",
        ));
    }

    let data = match check_inputs(sig) {
        Ok(data) => Some(data),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let output = match &sig.output {
        ReturnType::Default => {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                "missing the return type: a task function returns `Result<Output, TaskError>`",
            ));
            None
        }
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(output) => Some(output.clone()),
            None => {
                errors.push(syn::Error::new_spanned(
                    ty,
                    "a task function returns `Result<Output, TaskError>` (written out: an alias \
                     is not recognised)",
                ));
                None
            }
        },
    };
    errors.finish()?;
    match (data, output) {
        (Some(data), Some(output)) => Ok(TaskFn { data, output }),
        // Unreachable: a missing part always pushed an error above.
        _ => Err(syn::Error::new(sig.span(), format!("expected `{SHAPE}`"))),
    }
}

/// The parameters: the context, then the input, nothing else. Returns the input's type.
fn check_inputs(sig: &syn::Signature) -> syn::Result<Type> {
    let mut inputs = sig.inputs.iter();
    let (ctx, data) = match (inputs.next(), inputs.next()) {
        (None, _) => {
            return Err(syn::Error::new(
                sig.paren_token.span.join(),
                format!("missing the context and data parameters: a task function is `{SHAPE}`"),
            ))
        }
        (Some(FnArg::Receiver(receiver)), _) => {
            return Err(syn::Error::new_spanned(
                receiver,
                "#[zart_durable] goes on a free function, not a method; for a task with \
                 state, implement `TaskHandler` on your struct",
            ))
        }
        (Some(_), None) => {
            return Err(syn::Error::new(
                sig.paren_token.span.join(),
                "missing the data parameter: the task's input comes second, after the \
                 context (e.g. `data: Signup`)",
            ))
        }
        (Some(ctx), Some(data)) => (ctx, data),
    };
    let mut errors = Errors::default();
    if let FnArg::Typed(ctx) = ctx {
        if let Err(e) = check_context(&ctx.ty) {
            errors.push(e);
        }
    }
    let data = match data {
        FnArg::Receiver(receiver) => {
            errors.push(syn::Error::new_spanned(receiver, "unexpected `self`"));
            None
        }
        FnArg::Typed(data) => match check_data(&data.ty) {
            Ok(()) => Some((*data.ty).clone()),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    if let Some(extra) = inputs.next() {
        errors.push(syn::Error::new_spanned(
            extra,
            "a task function takes two parameters, the context and one input; put several \
             values in one struct",
        ));
    }
    errors.finish()?;
    data.ok_or_else(|| syn::Error::new(sig.paren_token.span.join(), format!("expected `{SHAPE}`")))
}

/// The first parameter must be `&mut TaskContext<impl Scheduler>` (paths allowed).
fn check_context(ty: &Type) -> syn::Result<()> {
    let wrong = |what: &str| {
        syn::Error::new_spanned(
            ty,
            format!("{what}: the first parameter must be `ctx: &mut TaskContext<impl Scheduler>`"),
        )
    };
    let Type::Reference(reference) = ty else {
        return Err(wrong("the context is taken by `&mut`"));
    };
    if reference.mutability.is_none() {
        return Err(wrong("the context is taken by `&mut`"));
    }
    let Type::Path(path) = &*reference.elem else {
        return Err(wrong("expected a `TaskContext`"));
    };
    let Some(last) = path.path.segments.last() else {
        return Err(wrong("expected a `TaskContext`"));
    };
    if last.ident != "TaskContext" {
        return Err(wrong("expected a `TaskContext`"));
    }
    let scheduler_is_impl = match &last.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match args.args.first() {
            Some(GenericArgument::Type(Type::ImplTrait(bounds))) => {
                bounds.bounds.iter().any(|bound| match bound {
                    TypeParamBound::Trait(t) => t
                        .path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "Scheduler"),
                    _ => false,
                })
            }
            _ => false,
        },
        _ => false,
    };
    if !scheduler_is_impl {
        return Err(wrong(
            "the worker chooses the scheduler, so write `impl Scheduler`",
        ));
    }
    Ok(())
}

/// The input is stored as JSON and handed back owned, so it is taken by value.
fn check_data(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(_) => Err(syn::Error::new_spanned(
            ty,
            "the input is read back from JSON and handed over owned: take it by value \
             (`data: Signup`), not by reference",
        )),
        Type::ImplTrait(_) => Err(syn::Error::new_spanned(
            ty,
            "the input needs a concrete type: it is read back from JSON",
        )),
        _ => Ok(()),
    }
}

/// `T` when `ty` is `Result<T, TaskError>` (any path to either).
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut args = args.args.iter();
    let (Some(GenericArgument::Type(ok)), Some(GenericArgument::Type(Type::Path(err))), None) =
        (args.next(), args.next(), args.next())
    else {
        return None;
    };
    let err_is_task_error = err
        .path
        .segments
        .last()
        .is_some_and(|s| s.ident == "TaskError");
    err_is_task_error.then_some(ok)
}

/// Several errors reported at once, so one build shows every problem.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
