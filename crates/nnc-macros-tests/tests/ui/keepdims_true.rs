// Python's `True`: the note says what `.nn` spells.
nnc::net! {
    model m {
        dim N;
        input x: [N, 3];
        loss sum(sum(x, axis = 1, keepdims = True));
    }
}

fn main() {}
