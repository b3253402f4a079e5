"""Bundle-local helpers. The networks, transforms, losses and handlers the configs use live in the `livervae`
package (one definition each); install it with `pip install -e <LiverVAE checkout>` before using this bundle."""
