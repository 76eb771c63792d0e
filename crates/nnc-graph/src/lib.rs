//! # nnc-graph: the lecture's circuit diagrams
//!
//! Takes a lowered [`nnc_ir::Model`] and values for its inputs and parameters; gives
//! its computational graph as DOT, SVG or PNG, with the forward value above every
//! wire and the gradient of the loss below it. The values come from the reference
//! interpreter ([`nnc_ir::interp`]) run on the model with its backward pass, wire by
//! wire ([`nnc_autodiff::differentiate_wires`]), so the picture shows what `nnc grad`
//! derives and `nnc gradcheck` checks.
//!
//! The stages: [`diagram`] decides what is drawn (gates, wires, labels);
//! [`dot`] writes it for Graphviz, [`svg`] lays it out with layout-rs and draws it,
//! `png` rasterises the SVG (feature `png`). [`values`] gives the values to draw at:
//! inputs and parameters from `.npz` files, at random or from the initialisers.
//!
//! ```
//! let source = "model m { dtype f64; param x: [] = -2; param y: [] = 5; loss x * y; }";
//! let model = &nnc_ir::compile_source(source).unwrap()[0];
//! let bindings = nnc_graph::declared_values(model).unwrap();
//! let picture = nnc_graph::graph(model, &bindings, &nnc_graph::Options::new("m.nn", source)).unwrap();
//! // The product -10; the gradients "mul swaps": 5 on x, -2 on y.
//! assert!(picture.dot().contains("-10"));
//! ```

pub mod diagram;
pub mod dot;
pub mod label;
#[cfg(feature = "png")]
mod png;
pub mod svg;
pub mod values;

pub use diagram::{Diagram, DiagramError, Gate, GateKind, Wire};
pub use svg::{MAX_LAYOUT_COST, RenderError};

use nnc_ir::interp::Bindings;
use nnc_ir::{Init, Model};

/// What to draw.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// The source's file name, for the tooltips (`gates.nn:12:10`).
    pub file: &'a str,
    /// The source text the model was compiled from.
    pub source: &'a str,
    /// Draw every operation, opening function calls (`sigmoid`, the user's `fn`s)
    /// into the operations of their bodies.
    pub expand: bool,
    /// Draw the derived backward pass instead of the forward graph.
    pub backward: bool,
}

impl<'a> Options<'a> {
    /// The forward graph, function calls as one gate each.
    pub fn new(file: &'a str, source: &'a str) -> Options<'a> {
        Options {
            file,
            source,
            expand: false,
            backward: false,
        }
    }
}

/// A drawn model: the diagram, ready to be written in any format.
#[derive(Clone, Debug)]
pub struct Picture {
    pub diagram: Diagram,
}

impl Picture {
    /// Graphviz DOT.
    pub fn dot(&self) -> String {
        dot::render(&self.diagram)
    }

    /// SVG, laid out here (no external program), for diagrams up to
    /// [`MAX_LAYOUT_COST`] (DOT has no limit).
    pub fn svg(&self) -> Result<String, RenderError> {
        svg::render(&self.diagram)
    }

    /// PNG: the SVG rasterised at twice its size.
    #[cfg(feature = "png")]
    pub fn png(&self) -> Result<Vec<u8>, RenderError> {
        png::render(&self.svg()?)
    }
}

/// Draws `model` at `bindings` (inputs and parameters, as the interpreter takes them).
pub fn graph(
    model: &Model,
    bindings: &Bindings<f64>,
    options: &Options<'_>,
) -> Result<Picture, DiagramError> {
    let source = diagram::Source::new(options.file, options.source);
    let diagram = if options.backward {
        diagram::backward(model, bindings, &source)?
    } else {
        diagram::forward(model, bindings, &source, options.expand)?
    };
    Ok(Picture { diagram })
}

/// Bindings from the model's own constant initialisers (`param x: [] = -2`), for
/// models that need nothing else: no inputs, and only constant, `zeros` or `ones`
/// parameters. `None` when the model needs inputs or random initialisers.
pub fn declared_values(model: &Model) -> Option<Bindings<f64>> {
    if !model.inputs.is_empty() {
        return None;
    }
    let params = model
        .params
        .iter()
        .map(|p| {
            let value = match p.init {
                Init::Zeros => 0.0,
                Init::Ones => 1.0,
                Init::Constant(v) => v,
                _ => return None,
            };
            let shape = nnc_ir::interp::concrete_shape(&p.shape, &[]);
            Some(ndarray::ArrayD::from_elem(shape, value))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Bindings {
        inputs: Vec::new(),
        params,
    })
}
