nnc::net! {
    model m {
        dim N;
        input x: [N, 3]
        loss sum(x);
    }
}

fn main() {}
