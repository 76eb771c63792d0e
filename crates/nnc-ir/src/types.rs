//! Element types, dims and shapes.

use std::fmt;

/// The float type a model computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Index of a dim in [`crate::Model::dims`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimId(pub u32);

/// One axis of a shape: known at compile time, or a runtime `dim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    Var(DimId),
}

/// A shape: rank 0 to 4.
pub type Shape = Vec<Dim>;

/// The most elements a value may have, counting its fixed dims: 2^48. Lowering
/// rejects any input, parameter or computed value with more, so in a lowered model
/// [`fixed_elements`] cannot overflow, and neither can a size in bytes (at most 2^51
/// for f64, within `isize` as Rust's allocations and ndarray require), a stride, an
/// offset or a fan-in. It is far beyond any memory (2 PiB of f64).
pub const MAX_ELEMENTS: usize = 1 << 48;

/// [`fixed_elements`], when it is at most [`MAX_ELEMENTS`].
pub fn checked_elements(shape: &[Dim]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, d| match d {
            Dim::Fixed(k) => n.checked_mul(*k),
            Dim::Var(_) => Some(n),
        })
        .filter(|n| *n <= MAX_ELEMENTS)
}

/// The product of a shape's fixed dims (its element count when it has no runtime
/// dims; otherwise the factor the runtime dims multiply). Lowered shapes have at most
/// [`MAX_ELEMENTS`]; for others, see [`checked_elements`].
pub fn fixed_elements(shape: &[Dim]) -> usize {
    shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n,
            Dim::Var(_) => 1,
        })
        .product()
}

/// What a tensor's elements are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    Float,
    /// Class indices (`index[N]` inputs, `argmax`).
    Index,
}

/// Element kind and shape of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub elem: Elem,
    pub shape: Shape,
}

impl Type {
    pub fn float(shape: Shape) -> Type {
        Type {
            elem: Elem::Float,
            shape,
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// A declared dim.
#[derive(Clone, Debug, PartialEq)]
pub struct DimInfo {
    pub name: String,
    /// Runtime dims are bound from the inputs; fixed dims are substituted into shapes
    /// during lowering, and kept here for the signature and the printer.
    pub size: Option<usize>,
}
