//! Rust expressions as token streams that know their precedence, so that
//! parentheses appear exactly where Rust needs them — and where the IR's evaluation
//! order must be kept (`a + (b + c)` is not `(a + b) + c` in floating point).

use nnc_ir::DType;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use std::str::FromStr;

/// Binding strength, loosest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prec {
    /// `if c { a } else { b }`: always parenthesised as an operand.
    If,
    Cmp,
    Add,
    /// `as` casts are given additive strength so they read as `(n as f64)`.
    Cast,
    Mul,
    Neg,
    /// Names, literals, calls, method calls, indexing, parentheses.
    Atom,
}

/// An expression.
#[derive(Clone, Debug)]
pub struct Ex {
    pub ts: TokenStream,
    pub prec: Prec,
    /// A bare unsuffixed float literal (needs a suffix as a method receiver).
    pub literal: Option<f64>,
}

impl quote::ToTokens for Ex {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.ts.clone());
    }
}

impl Ex {
    pub fn atom(ts: TokenStream) -> Ex {
        Ex {
            ts,
            prec: Prec::Atom,
            literal: None,
        }
    }

    pub fn ident(name: &str) -> Ex {
        Ex::atom(ident(name))
    }

    /// The expression, in parentheses unless it binds at least as tightly as `min`.
    pub fn at(&self, min: Prec) -> TokenStream {
        if self.prec >= min {
            self.ts.clone()
        } else {
            let ts = &self.ts;
            quote!((#ts))
        }
    }

    /// As a method receiver: parenthesised unless an atom; literals get a suffix.
    pub fn receiver(&self, dtype: DType) -> TokenStream {
        match self.literal {
            Some(v) => {
                let lit = suffixed(v, dtype);
                if v < 0.0 { quote!((#lit)) } else { lit }
            }
            None => self.at(Prec::Atom),
        }
    }

    pub fn method(&self, dtype: DType, name: &str, args: &[Ex]) -> Ex {
        let recv = self.receiver(dtype);
        let name = format_ident!("{}", name);
        Ex::atom(quote!(#recv.#name(#(#args),*)))
    }

    pub fn call(path: TokenStream, args: &[Ex]) -> Ex {
        Ex::atom(quote!(#path(#(#args),*)))
    }

    /// A call of a function generic over the float type (`rt::sigmoid`): when every
    /// argument is a bare literal (a folded constant), the first gets its type suffix,
    /// or Rust could not infer `F`.
    pub fn generic_call(path: TokenStream, args: &[Ex], dtype: DType) -> Ex {
        let mut args = args.to_vec();
        let all_literals = args.iter().all(|a| a.literal.is_some());
        if let (true, Some(first)) = (all_literals, args.first_mut()) {
            *first = Ex::atom(first.receiver(dtype));
        }
        Ex::call(path, &args)
    }

    /// `a op b` for a left-associative operator of precedence `p`: the right operand
    /// is parenthesised at equal precedence, keeping the IR's order.
    pub fn binary(a: &Ex, op: TokenStream, b: &Ex, p: Prec) -> Ex {
        let l = a.at(p);
        let r = b.at(next(p));
        Ex {
            ts: quote!(#l #op #r),
            prec: p,
            literal: None,
        }
    }

    pub fn add(a: &Ex, b: &Ex) -> Ex {
        Ex::binary(a, quote!(+), b, Prec::Add)
    }

    pub fn sub(a: &Ex, b: &Ex) -> Ex {
        Ex::binary(a, quote!(-), b, Prec::Add)
    }

    pub fn mul(a: &Ex, b: &Ex) -> Ex {
        Ex::binary(a, quote!(*), b, Prec::Mul)
    }

    pub fn div(a: &Ex, b: &Ex) -> Ex {
        Ex::binary(a, quote!(/), b, Prec::Mul)
    }

    pub fn neg(a: &Ex) -> Ex {
        match a.literal {
            // The literal's own spelling (an `f32` one is shorter than `f64`'s),
            // its sign flipped: `-` added, or the leading `-` dropped.
            Some(v) if a.prec == Prec::Atom => Ex {
                ts: {
                    let ts = &a.ts;
                    quote!(-#ts)
                },
                prec: Prec::Neg,
                literal: Some(-v),
            },
            Some(v) => Ex {
                ts: a.ts.clone().into_iter().skip(1).collect(),
                prec: Prec::Atom,
                literal: Some(-v),
            },
            None => {
                let x = a.at(Prec::Atom);
                Ex {
                    ts: quote!(-#x),
                    prec: Prec::Neg,
                    literal: None,
                }
            }
        }
    }

    /// `a op b` for a comparison.
    pub fn cmp(a: &Ex, op: TokenStream, b: &Ex) -> Ex {
        let l = a.at(next(Prec::Cmp));
        let r = b.at(next(Prec::Cmp));
        Ex {
            ts: quote!(#l #op #r),
            prec: Prec::Cmp,
            literal: None,
        }
    }

    /// `if cond { a } else { b }`.
    pub fn if_else(cond: &Ex, a: &Ex, b: &Ex) -> Ex {
        Ex {
            ts: quote!(if #cond { #a } else { #b }),
            prec: Prec::If,
            literal: None,
        }
    }

    /// A float literal (negative ones as a negation).
    pub fn float(v: f64) -> Ex {
        if v.is_nan() {
            return Ex::atom(quote!(F::NAN));
        }
        if v.is_infinite() {
            return if v > 0.0 {
                Ex::atom(quote!(F::INFINITY))
            } else {
                Ex::atom(quote!(F::NEG_INFINITY))
            };
        }
        let lit = float_literal(v.abs());
        if v < 0.0 || (v == 0.0 && v.is_sign_negative()) {
            Ex {
                ts: quote!(-#lit),
                prec: Prec::Neg,
                literal: Some(v),
            }
        } else {
            Ex {
                ts: lit,
                prec: Prec::Atom,
                literal: Some(v),
            }
        }
    }

    /// A `usize` literal.
    pub fn usize(v: usize) -> Ex {
        let lit = Literal::usize_unsuffixed(v);
        Ex::atom(quote!(#lit))
    }

    /// `self as F`.
    pub fn cast_f(&self) -> Ex {
        let x = self.at(Prec::Mul);
        Ex {
            ts: quote!(#x as F),
            prec: Prec::Cast,
            literal: None,
        }
    }
}

fn next(p: Prec) -> Prec {
    match p {
        Prec::If => Prec::Cmp,
        Prec::Cmp => Prec::Add,
        Prec::Add => Prec::Cast,
        Prec::Cast => Prec::Mul,
        Prec::Mul => Prec::Neg,
        Prec::Neg | Prec::Atom => Prec::Atom,
    }
}

/// An identifier (raw for keywords).
pub fn ident(name: &str) -> TokenStream {
    match name.strip_prefix("r#") {
        Some(raw) => {
            let id = proc_macro2::Ident::new_raw(raw, proc_macro2::Span::call_site());
            quote!(#id)
        }
        None => {
            let id = format_ident!("{}", name);
            quote!(#id)
        }
    }
}

/// A non-negative float as a person writes it: `2.0`, `0.5`, `1e-8`.
fn float_literal(v: f64) -> TokenStream {
    let mut text = format!("{v:?}");
    if !text.contains(['.', 'e', 'E']) {
        text.push_str(".0");
    }
    TokenStream::from_str(&text).unwrap_or_else(|_| quote!(0.0))
}

/// A literal with its type suffix (for method receivers: `2.0_f64.ln()`).
fn suffixed(v: f64, dtype: DType) -> TokenStream {
    let text = match dtype {
        DType::F64 => format!("{:?}_f64", v.abs()),
        DType::F32 => format!("{:?}_f32", v.abs() as f32),
    };
    let lit = TokenStream::from_str(&text).unwrap_or_else(|_| quote!(0.0));
    if v < 0.0 { quote!(-#lit) } else { lit }
}

/// A float literal for a model's dtype: `f32` constants are rounded first, so the
/// literal is what the program computes with (and has no excess precision).
pub fn constant(v: f64, dtype: DType) -> Ex {
    match dtype {
        DType::F64 => Ex::float(v),
        DType::F32 => Ex::float(f64::from(v as f32)).with_f32_text(v as f32),
    }
}

impl Ex {
    /// Re-spells a literal with `f32`'s shortest representation (`0.1`, not
    /// `0.10000000149011612`).
    fn with_f32_text(mut self, v: f32) -> Ex {
        if !v.is_finite() {
            return self;
        }
        let mut text = format!("{:?}", v.abs());
        if !text.contains(['.', 'e', 'E']) {
            text.push_str(".0");
        }
        if let Ok(lit) = TokenStream::from_str(&text) {
            self.ts = if v < 0.0 || (v == 0.0 && v.is_sign_negative()) {
                quote!(-#lit)
            } else {
                lit
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(e: &Ex) -> String {
        e.ts.to_string()
    }

    #[test]
    fn parentheses_only_where_needed_and_order_kept() {
        let (a, b, c) = (Ex::ident("a"), Ex::ident("b"), Ex::ident("c"));
        assert_eq!(s(&Ex::add(&Ex::add(&a, &b), &c)), "a + b + c");
        assert_eq!(s(&Ex::add(&a, &Ex::add(&b, &c))), "a + (b + c)");
        assert_eq!(s(&Ex::mul(&Ex::add(&a, &b), &c)), "(a + b) * c");
        assert_eq!(s(&Ex::sub(&a, &Ex::mul(&b, &c))), "a - b * c");
        assert_eq!(s(&Ex::neg(&Ex::neg(&a))), "- (- a)");
        assert_eq!(
            s(&Ex::neg(&a).method(DType::F64, "exp", &[])),
            "(- a) . exp ()"
        );
        assert_eq!(
            s(&Ex::float(2.0).method(DType::F64, "ln", &[])),
            "2.0_f64 . ln ()"
        );
    }

    #[test]
    fn literals() {
        assert_eq!(s(&Ex::float(1e-8)), "1e-8");
        assert_eq!(s(&Ex::float(2.0)), "2.0");
        assert_eq!(s(&Ex::float(-0.5)), "- 0.5");
        assert_eq!(s(&constant(0.1, DType::F32)), "0.1");
        assert_eq!(s(&constant(1e20, DType::F64)), "1e20");
    }
}
