import jax
import jax.numpy as jnp
import numpy as np
import optax

from metasim_jax import transformer
from metasim_jax.grammar import sample
from metasim_jax.transformer import losses


def test_reinforce_is_unbiased_on_a_toy_problem():
  """E[R] with R(x) = -(x - 3)^2, x ~ N(mu, sigma): d/dmu = -2 (mu - 3)."""
  mu, sigma = 1.0, 0.5
  eps = jax.random.normal(jax.random.key(0), (400_000,))
  x = jax.lax.stop_gradient(mu + sigma * eps)
  reward = -(x - 3.0) ** 2

  def surrogate(m):
    logp = -0.5 * ((x - m) / sigma) ** 2
    return jnp.mean(losses.reinforce_surrogate(logp, reward, 0.0))

  estimate = -jax.grad(surrogate)(mu)  # surrogate is a loss: minus ascent
  np.testing.assert_allclose(estimate, -2 * (mu - 3.0), rtol=0.03)
  # A constant baseline changes the variance, not the mean.
  with_baseline = -jax.grad(lambda m: jnp.mean(losses.reinforce_surrogate(
      -0.5 * ((x - m) / sigma) ** 2, reward, -4.0)))(mu)
  np.testing.assert_allclose(with_baseline, -2 * (mu - 3.0), rtol=0.03)


def test_reward_equal_to_baseline_gives_zero_gradient(grammar, pools):
  s = sample(jax.random.key(0), grammar, 8, pools)
  model = transformer.build(grammar, hidden=8)
  params = transformer.init(jax.random.key(1), model, grammar, s)
  sigma = losses.sigma_table(grammar, {"x": 1.0, "yaw": 5.0})
  mean = transformer.transform(params, model, grammar, s)[0]
  drawn = losses.gaussian_sample(jax.random.key(2), mean, sigma, grammar)

  def surrogate(p, r, b):
    m = transformer.transform(p, model, grammar, s)[0]
    return jnp.mean(losses.reinforce_surrogate(
        losses.gaussian_log_prob(drawn.attrs, m, sigma, grammar), r, b))

  g0 = jax.grad(surrogate)(params, 0.7, 0.7)
  assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(g0))
  g1 = jax.grad(surrogate)(params, 0.9, 0.7)
  assert optax.global_norm(g1) > 0  # the task loss moves the generator


def test_log_prob_is_evaluated_at_the_sample_not_the_mean(grammar, pools):
  """The official code's bug: log p taken at the mean is constant."""
  s = sample(jax.random.key(0), grammar, 4, pools)
  sigma = losses.sigma_table(grammar, {"x": 2.0, "yaw": 10.0})
  drawn = losses.gaussian_sample(jax.random.key(1), s, sigma, grammar)
  lp_sample = losses.gaussian_log_prob(drawn.attrs, s, sigma, grammar)
  lp_mean = losses.gaussian_log_prob(s.attrs, s, sigma, grammar)
  assert bool((lp_sample < lp_mean).all())
  # Only sampled attributes moved.
  moved = np.abs(np.asarray(drawn.attrs - s.attrs)) > 0
  assert not moved[:, sigma == 0].any()
  assert moved[:, sigma > 0].all()


def test_autoencoder_loss_is_zero_for_identity(grammar, pools):
  s = sample(jax.random.key(0), grammar, 8, pools)
  assert float(losses.autoencoder_loss(s, {}, s, grammar)) < 1e-6
  moved = s.replace(attrs=s.attrs.at[:, :, grammar.col("x")].add(1.0))
  assert float(losses.autoencoder_loss(moved, {}, s, grammar)) > 0


def test_shared_noise_is_one_offset_per_attribute(grammar, pools):
  s = sample(jax.random.key(0), grammar, 16, pools)
  sigma = losses.sigma_table(grammar, {"x": 2.0, "yaw": 10.0})
  drawn = losses.shared_gaussian_sample(jax.random.key(1), s, sigma, grammar)
  d = grammar.slot("scene/digit[0]")
  dx = np.asarray(drawn.attrs - s.attrs)[:, d, grammar.col("x")]
  np.testing.assert_allclose(dx, dx[0], atol=1e-5)  # shared by all scenes
  assert abs(dx[0]) > 0
  np.testing.assert_array_equal(drawn.attrs[:, d, grammar.col("y")],
                                s.attrs[:, d, grammar.col("y")])
  lp = losses.shared_gaussian_log_prob(drawn.attrs, s, sigma, grammar)
  assert lp.shape == (16,)
  off = dx[0]
  dyaw = float(((drawn.attrs - s.attrs)[0, d, grammar.col("yaw")] + 180)
               % 360 - 180)
  expected = (-0.5 * (off / 2.0) ** 2 - np.log(2.0)
              - 0.5 * (dyaw / 10.0) ** 2 - np.log(10.0) - np.log(2 * np.pi))
  np.testing.assert_allclose(lp[0], expected, rtol=1e-4)
