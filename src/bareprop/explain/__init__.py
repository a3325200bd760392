"""Why did the model say 7? Attributions and adversarial examples from the backward pass
every layer already has (docs/explain.md derives each one).

    import bareprop as bp
    attr = bp.explain.integrated_gradients(model, x, target=7)   # x: (N, 1, 28, 28), scaled
    cam = bp.explain.gradcam(model, x)                           # (N, 1, h, w)

Each method equals Captum's on the model's PyTorch twin (tests/explain). The model is
left as found: its parameters, their ``grad`` and its train/eval mode.
"""
from .gradcam import gradcam, interpolate, upsample
from .gradients import (class_visualization, fgsm, input_x_gradient, integrated_gradients,
                        saliency)
from .occlusion import occlusion

__all__ = ["saliency", "input_x_gradient", "integrated_gradients", "gradcam", "upsample",
           "interpolate", "occlusion", "fgsm", "class_visualization"]
