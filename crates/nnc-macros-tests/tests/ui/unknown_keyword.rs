nnc::net! {
    model m {
        dim N;
        input x: [N, 3];
        loss sum(x, axs = 1);
    }
}

fn main() {}
