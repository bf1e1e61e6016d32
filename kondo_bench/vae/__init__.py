"""A VAE on binarised MNIST: Silent Gradients (arXiv 2508.03587) beside REINFORCE, Gumbel-Softmax,
DG and the Kondo gate, on the same data.

- model.py     the two latent kinds (Gaussian, categorical), the MLP encoder, the Bernoulli MLP
               and linear-Gaussian decoders, KL terms and the linear decoder's closed form
- task.py      `VaeTask`: the loop's Task contract for the score-function estimators (pg, dg,
               dgk and any gate), the test ELBO and the encoder-gradient variance
- pathwise.py  reparam, gumbel and silent: a step of their own (no score term to gate)
"""
