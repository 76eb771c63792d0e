//! SVG: layout-rs places the gates left to right in layers (Sugiyama, as Graphviz's
//! `dot` does) and routes the wires; this file draws what it placed.
//!
//! Why our own drawing rather than layout-rs's `SVGWriter`: its output depends on a
//! `HashMap`'s order (so it cannot be snapshot-tested), it writes a wire's label
//! along the curve, and it has no tooltips. Here the value sits above each wire and
//! the gradient below it (green and red, as in the lecture), each gate carries its
//! source location as an SVG `<title>`, and coordinates are rounded so the text is
//! stable.

use crate::diagram::{Diagram, Gate, GateKind, Wire};
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::fmt::Write;

/// Gate labels' font size; wire labels use [`WIRE_FONT`], which is how the canvas
/// tells the two apart.
const GATE_FONT: usize = 14;
const WIRE_FONT: usize = 12;
const VALUE_COLOUR: &str = "#1b7a2f";
const GRADIENT_COLOUR: &str = "#c62828";
const FONT_FAMILY: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// The largest [`layout_cost`] laid out: about a second (measured: a cost of 14 000
/// took 1.1 s, 30 000 took 2.8 s; `deep_tanh` costs 4 500). Beyond it the layout
/// would take minutes, and the picture would be unreadable anyway.
pub const MAX_LAYOUT_COST: usize = 15_000;

/// Why a diagram was not drawn as SVG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// Too large to lay out in reasonable time ([`MAX_LAYOUT_COST`]).
    TooLarge { gates: usize, cost: usize },
    /// The layout crate panicked (a bug in it, caught so that no input crashes us).
    LayoutFailed,
    /// The SVG could not be rasterised (PNG).
    Raster(String),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::TooLarge { gates, cost } => write!(
                f,
                "the graph is too large to lay out ({gates} gates, layout cost {cost}, the \
                 limit is {MAX_LAYOUT_COST}); draw it with Graphviz from --format dot, or \
                 draw a smaller model"
            ),
            RenderError::LayoutFailed => write!(f, "the graph layout failed (a bug in layout-rs)"),
            RenderError::Raster(why) => write!(f, "cannot make the PNG: {why}"),
        }
    }
}

impl std::error::Error for RenderError {}

/// Lays out and draws `diagram`, when its [`layout_cost`] is within
/// [`MAX_LAYOUT_COST`].
pub fn render(diagram: &Diagram) -> Result<String, RenderError> {
    let cost = layout_cost(diagram);
    if cost > MAX_LAYOUT_COST {
        return Err(RenderError::TooLarge {
            gates: diagram.gates.len(),
            cost,
        });
    }
    let mut graph = VisualGraph::new(Orientation::LeftToRight);
    let handles: Vec<_> = diagram
        .gates
        .iter()
        .map(|gate| graph.add_node(element(gate)))
        .collect();
    for wire in &diagram.wires {
        let mut arrow = Arrow::simple(&wire_text(wire));
        arrow.look = look(Color::fast("black"), 1, None, WIRE_FONT);
        graph.add_edge(arrow, handles[wire.from], handles[wire.to]);
    }
    let mut canvas = Canvas::default();
    let laid_out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        graph.do_it(false, false, false, &mut canvas);
    }));
    if laid_out.is_err() {
        return Err(RenderError::LayoutFailed);
    }
    let gradients = diagram.wires.iter().any(|w| w.gradient.is_some());
    Ok(canvas.finish(&diagram.title, gradients))
}

/// What laying out `diagram` costs, in layout-rs's terms: the sum over its layers of
/// the square of each layer's width (its crossing reduction compares pairs of nodes
/// in a layer, 50 rounds). Layers alternate between gates and the wires' labels (one
/// node each), and a wire that spans several layers adds a node to each.
pub fn layout_cost(diagram: &Diagram) -> usize {
    // Longest-path layers, by Kahn's algorithm (the diagram is acyclic).
    let count = diagram.gates.len();
    let mut incoming = vec![0usize; count];
    let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); count];
    for w in &diagram.wires {
        incoming[w.to] += 1;
        outgoing[w.from].push(w.to);
    }
    let mut layer = vec![0usize; count];
    let mut ready: Vec<usize> = (0..count).filter(|&g| incoming[g] == 0).collect();
    while let Some(g) = ready.pop() {
        for &to in &outgoing[g] {
            layer[to] = layer[to].max(layer[g] + 1);
            incoming[to] -= 1;
            if incoming[to] == 0 {
                ready.push(to);
            }
        }
    }
    let depth = layer.iter().max().map_or(0, |d| 2 * d + 1);
    let mut width = vec![0usize; depth];
    for &l in &layer {
        width[2 * l] += 1;
    }
    for w in &diagram.wires {
        for slot in &mut width[2 * layer[w.from] + 1..(2 * layer[w.to]).max(2 * layer[w.from] + 1)]
        {
            *slot += 1;
        }
    }
    width.iter().map(|w| w * w).sum()
}

/// A wire's label: the value, then the gradient on a second line (layout-rs sizes the
/// label's box to fit, so the wire passes between the two).
fn wire_text(wire: &Wire) -> String {
    match &wire.gradient {
        Some(g) => format!("{}\n{g}", wire.value),
        None => wire.value.clone(),
    }
}

fn look(line: Color, width: usize, fill: Option<Color>, font: usize) -> StyleAttr {
    StyleAttr::new(line, width, fill, 0, font)
}

fn element(gate: &Gate) -> Element {
    let text = match &gate.detail {
        Some(detail) => format!("{}\n{detail}", gate.label),
        None => gate.label.clone(),
    };
    let (shape, fill, rounded) = match gate.kind {
        GateKind::Param => (ShapeKind::Circle(text), "#e3f2fd", 0),
        GateKind::Input | GateKind::Constant => (ShapeKind::Circle(text), "#f5f5f5", 0),
        GateKind::Operation => (ShapeKind::Box(text), "#fff8e1", 6),
        GateKind::Function => (ShapeKind::Box(text), "#ffe0b2", 10),
        GateKind::Result => (ShapeKind::Box(text), "#ede7f6", 0),
        GateKind::Branch => (ShapeKind::Circle(String::new()), "#424242", 0),
    };
    let mut style = look(Color::fast("black"), 1, Color::from_name(fill), GATE_FONT);
    style.rounded = rounded;
    let size = match gate.kind {
        GateKind::Branch => Point::new(10., 10.),
        _ => get_shape_size(Orientation::LeftToRight, &shape, GATE_FONT, false),
    };
    Element::create_with_properties(
        shape,
        style,
        Orientation::LeftToRight,
        size,
        gate.tooltip.clone(),
    )
}

/// Collects the drawing in the order layout-rs renders (gates, then wires), with
/// every coordinate rounded to a tenth.
#[derive(Default)]
struct Canvas {
    body: String,
    width: f64,
    height: f64,
    clips: usize,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A coordinate as written: one decimal, no `-0`.
fn c(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        "0".to_string()
    } else {
        format!("{r}")
    }
}

impl Canvas {
    fn grow(&mut self, corner: Point) {
        self.width = self.width.max(corner.x + 10.0);
        self.height = self.height.max(corner.y + 10.0);
    }

    /// A shape, with its tooltip as the SVG `<title>` browsers show on hover.
    fn shape(&mut self, element: String, tooltip: Option<String>) {
        match tooltip.filter(|t| !t.is_empty()) {
            Some(t) => {
                let _ = writeln!(self.body, "<g><title>{}</title>{element}</g>", escape(&t));
            }
            None => {
                let _ = writeln!(self.body, "{element}");
            }
        }
    }

    /// The document: a white background, the title with the legend, the drawing.
    fn finish(&self, title: &str, gradients: bool) -> String {
        let (w, h) = (c(self.width), c(self.height + 24.0));
        let legend = if gradients {
            format!(
                "<tspan fill=\"{VALUE_COLOUR}\">value</tspan> / \
                 <tspan fill=\"{GRADIENT_COLOUR}\">gradient</tspan>"
            )
        } else {
            format!("<tspan fill=\"{VALUE_COLOUR}\">value</tspan>")
        };
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 -24 {w} {h}\" font-family=\"{FONT_FAMILY}\">\n\
             <title>{}</title>\n\
             <defs><marker id=\"head\" markerWidth=\"8\" markerHeight=\"6\" refX=\"8\" refY=\"3\" \
             orient=\"auto\"><path d=\"M0,0 L8,3 L0,6 z\" fill=\"#424242\"/></marker></defs>\n\
             <rect x=\"0\" y=\"-24\" width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
             <text x=\"8\" y=\"-8\" font-size=\"13\" fill=\"#616161\">{} {legend}</text>\n{}</svg>\n",
            escape(title),
            escape(title),
            self.body
        )
    }
}

impl RenderBackend for Canvas {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        self.grow(xy.add(size));
        let fill = look
            .fill_color
            .map_or("none".to_string(), |f| f.to_web_color());
        let rect = format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"{fill}\" \
             stroke=\"{}\" stroke-width=\"{}\"/>",
            c(xy.x),
            c(xy.y),
            c(size.x),
            c(size.y),
            look.rounded,
            look.line_color.to_web_color(),
            look.line_width
        );
        self.shape(rect, properties);
    }

    fn draw_line(&mut self, start: Point, stop: Point, look: &StyleAttr, _: Option<String>) {
        self.grow(start);
        self.grow(stop);
        let _ = writeln!(
            self.body,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
            c(start.x),
            c(start.y),
            c(stop.x),
            c(stop.y),
            look.line_color.to_web_color(),
            look.line_width
        );
    }

    fn draw_circle(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
    ) {
        self.grow(xy.add(size.scale(0.5)));
        let fill = look
            .fill_color
            .map_or("none".to_string(), |f| f.to_web_color());
        let ellipse = format!(
            "<ellipse cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\" fill=\"{fill}\" stroke=\"{}\" \
             stroke-width=\"{}\"/>",
            c(xy.x),
            c(xy.y),
            c(size.x / 2.0),
            c(size.y / 2.0),
            look.line_color.to_web_color(),
            look.line_width
        );
        self.shape(ellipse, properties);
    }

    /// Gate labels: the name, then a smaller grey line (local gradients, the rule).
    /// Wire labels: the value in green above the wire, the gradient in red below it,
    /// on a white halo so the wire does not strike through them.
    fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
        let lines: Vec<&str> = text.lines().collect();
        let wire = look.font_size == WIRE_FONT;
        let step = look.font_size as f64 * 1.25;
        // A wire's lone value sits above the wire, as it does over a gradient.
        let first = match (wire, lines.len()) {
            (true, 1) => xy.y - step / 2.0,
            (_, n) => xy.y - step * n.saturating_sub(1) as f64 / 2.0,
        };
        for (i, line) in lines.iter().enumerate() {
            let y = first + step * i as f64;
            let (size, colour, halo) = match (wire, i) {
                (true, 0) => (look.font_size, VALUE_COLOUR, true),
                (true, _) => (look.font_size, GRADIENT_COLOUR, true),
                (false, 0) => (look.font_size, "black", false),
                (false, _) => (look.font_size - 3, "#616161", false),
            };
            let halo = if halo {
                " stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\""
            } else {
                ""
            };
            let _ = writeln!(
                self.body,
                "<text x=\"{}\" y=\"{}\" font-size=\"{size}\" fill=\"{colour}\"{halo} \
                 text-anchor=\"middle\" dominant-baseline=\"central\" \
                 pointer-events=\"none\">{}</text>",
                c(xy.x),
                c(y),
                escape(line)
            );
        }
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        look: &StyleAttr,
        _: Option<String>,
        _text: &str,
    ) {
        // layout-rs gives a cubic Bézier path: the first pair is the start and its
        // control point, each later pair an end point's control point and the point.
        let [(start, control), (entry, end), rest @ ..] = path else {
            return;
        };
        let point = |p: &Point| format!("{} {}", c(p.x), c(p.y));
        let mut d = format!(
            "M {} C {}, {}, {}",
            point(start),
            point(control),
            point(entry),
            point(end)
        );
        self.grow(*start);
        self.grow(*end);
        for (entry, end) in rest {
            self.grow(*end);
            let _ = write!(d, " S {}, {}", point(entry), point(end));
        }
        let dash = if dashed {
            " stroke-dasharray=\"5,5\""
        } else {
            ""
        };
        let marker = if head.1 {
            " marker-end=\"url(#head)\""
        } else {
            ""
        };
        let _ = writeln!(
            self.body,
            "<path d=\"{}\" fill=\"none\" stroke=\"#424242\" stroke-width=\"{}\"{dash}{marker}/>",
            d, look.line_width
        );
    }

    fn create_clip(&mut self, _xy: Point, _size: Point, _rounded: usize) -> ClipHandle {
        // Only records use clips, and gates are never records.
        self.clips += 1;
        self.clips
    }
}
