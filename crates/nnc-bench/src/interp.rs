//! The IR interpreter as a [`Trainer`]: `nnc_ir::interp::evaluate` on the model with
//! its derived backward pass (`nnc_autodiff::with_gradients`), then `w -= lr * dw`.
//!
//! The interpreter allocates every node's value afresh and checks every type, so this
//! is what nnc costs *without* compiling: the gap to the generated code is what
//! compilation buys.

use crate::workload::Problem;
use crate::{BenchFloat, Named, Trainer};
use nnc_ir::interp::{Bindings, Evaluation, evaluate};
use nnc_ir::{GradOf, Model};

pub struct InterpTrainer<F> {
    model: Model,
    bindings: Bindings<F>,
    lr: F,
    /// The last evaluation: the gradients [`Trainer::update`] applies.
    last: Evaluation<F>,
}

impl<F: BenchFloat> InterpTrainer<F> {
    /// Differentiates the workload's model and binds the problem to it; evaluates it
    /// once, so that a problem the model does not accept is an error here.
    pub fn new(problem: &Problem<F>, lr: f64) -> Result<Self, String> {
        let model = problem.workload.model_with_gradients()?;
        let bindings = problem.bindings(&model)?;
        let last = evaluate(&model, &bindings).map_err(|e| e.to_string())?;
        let lr = F::from_f64(lr).ok_or_else(|| format!("learning rate {lr}"))?;
        Ok(InterpTrainer {
            model,
            bindings,
            lr,
            last,
        })
    }
}

impl<F: BenchFloat> Trainer<F> for InterpTrainer<F> {
    fn loss_and_grad(&mut self) -> F {
        // `new` evaluated the model on these inputs and parameters of these shapes,
        // and an update changes no shape: evaluation cannot fail now.
        self.last = evaluate(&self.model, &self.bindings)
            .expect("the interpreter accepted these shapes in `InterpTrainer::new`");
        self.last.loss()
    }

    fn update(&mut self) {
        for (of, grad) in self.last.grads() {
            if let GradOf::Param(p) = of {
                self.bindings.params[p.0 as usize].scaled_add(-self.lr, grad);
            }
        }
    }

    fn params(&self) -> Named<'_, F> {
        self.model
            .params
            .iter()
            .zip(&self.bindings.params)
            .map(|(info, p)| (info.name.as_str(), p.view()))
            .collect()
    }

    fn grads(&self) -> Named<'_, F> {
        self.last
            .grads()
            .filter_map(|(of, g)| match of {
                GradOf::Param(p) => Some((self.model.params[p.0 as usize].name.as_str(), g.view())),
                GradOf::Input(_) => None,
            })
            .collect()
    }
}
