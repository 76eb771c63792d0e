nnc::net! {
    model m {
        dim N;
        input x: [N, 3];
        param w: [3, 2];
        let h = sigmod(x @ w);
        loss sum(h);
    }
}

fn main() {}
