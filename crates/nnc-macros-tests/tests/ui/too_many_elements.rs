// 2^40 x 2^40 elements: an error at the declaration, not an overflow in the macro.
nnc::net! {
    model m {
        dim A = 1099511627776;
        param w: [A, A];
        loss mean(w);
    }
}

fn main() {}
