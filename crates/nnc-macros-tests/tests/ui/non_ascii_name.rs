// Rust accepts Unicode names; `.nn` (and so `net!`) takes ASCII names only, and says
// so as `nnc check` does.
nnc::net! {
    model m {
        dim N;
        input größe: [N, 3];
        loss sum(größe);
    }
}

fn main() {}
