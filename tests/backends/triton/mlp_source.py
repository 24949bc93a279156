"""The Adam MLP 784-512-512-10 of the issue's H100 goal, shared by the fusion and
tile-table tests."""
MLP = """
model MLP {
    input  x: f32[B, 784]
    target y: i32[B]
    h1  = dense(x, 512, activation=relu)
    h2  = dense(h1, 512, activation=relu)
    out = dense(h2, 10, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.001)
}
"""
