"""Framework twins (PyTorch, later Keras) of bareprop models.

Imported only by ``bareprop compare`` and the tests: the library never needs torch.
"""
