"""Meta-Sim training: losses, jitted steps and the experiment loop."""
