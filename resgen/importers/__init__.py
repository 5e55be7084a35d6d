"""import: an existing ResNet, written in code, becomes a spec that reproduces it exactly.

A reference names the model (`reference.py`): ``timm:resnet50d``, ``torchvision:resnext50_32x4d``,
``keras:ResNet50V2`` (keras.applications) or ``path/to/models.py:resnet20`` (a class or a factory in a
Python file). The model is built with random weights (nothing is downloaded), its structure read from
a traced graph (torch.fx for torch, the functional graph for Keras), and recognised as a spec:
`torch_model.py` for torch models, `keras_model.py` for Keras models. What the spec language cannot
express is refused (`NotExpressible`, naming the module path and the construct), never approximated.

Only the framework a reference needs is imported, and only when it is imported.
"""
