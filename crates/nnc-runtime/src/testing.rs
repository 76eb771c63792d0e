//! Test helpers shared by the unit tests.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

use crate::TensorSet;

/// An owned, ordered set of named tensors: the simplest [`TensorSet`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensors<F> {
    items: Vec<(&'static str, ArrayD<F>)>,
}

impl<F> Tensors<F> {
    pub(crate) fn new(items: Vec<(&'static str, ArrayD<F>)>) -> Self {
        Tensors { items }
    }

    pub(crate) fn push(&mut self, name: &'static str, array: ArrayD<F>) {
        self.items.push((name, array));
    }
}

impl<F> TensorSet<F> for Tensors<F> {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, F>)> {
        self.items
            .iter()
            .map(|(name, a)| (*name, a.view()))
            .collect()
    }

    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, F>)> {
        self.items
            .iter_mut()
            .map(|(name, a)| (*name, a.view_mut()))
            .collect()
    }
}
