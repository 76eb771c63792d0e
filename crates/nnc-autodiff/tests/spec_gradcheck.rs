//! Every spec model's derived gradients against central finite differences.

use nnc_autodiff::gradcheck::{Options, gradcheck};

#[test]
fn every_spec_model_passes_gradcheck() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/models")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
    {
        let source = std::fs::read_to_string(path).expect("readable");
        for model in nnc_ir::compile_source(&source).expect("compiles") {
            // Wide models: a small sample per tensor keeps the interpreter quick.
            let options = Options {
                batch: 3,
                max_samples: 12,
                seed: 1,
                ..Options::default()
            };
            let report =
                gradcheck(&model, &options).unwrap_or_else(|e| panic!("{}: {e}", model.name));
            assert!(report.passed(), "{report}");
            assert_eq!(report.tensors.len(), nnc_ir::grad_targets(&model).len());
            checked += 1;
        }
    }
    assert!(checked >= 13, "checked {checked} models");
}
