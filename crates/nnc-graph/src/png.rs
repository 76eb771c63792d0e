//! PNG: the SVG rasterised by resvg (pure Rust), text in the system's fonts.

/// How many pixels per SVG unit: 2 gives pictures sharp enough for slides...
const SCALE: f32 = 2.0;
/// ...up to this width; wider pictures get fewer (but at least one per unit).
const MAX_WIDTH: f32 = 4096.0;

use crate::svg::RenderError;

/// Rasterises an SVG made by [`crate::svg::render`].
pub fn render(svg: &str) -> Result<Vec<u8>, RenderError> {
    rasterise(svg).map_err(RenderError::Raster)
}

fn rasterise(svg: &str) -> Result<Vec<u8>, String> {
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| e.to_string())?;
    let scale = (MAX_WIDTH / tree.size().width()).clamp(1.0, SCALE);
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or("the picture is empty")?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("a {}x{} picture is too large", size.width(), size.height()))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}
