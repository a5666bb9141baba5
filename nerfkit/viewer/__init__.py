"""The live web viewer (viser): the trainer or kit-viewer feeds it through `Viewer`'s narrow interface (render a
view between steps, report step and metrics, pause); it renders through the model's public forward call and knows
no model's internals."""
