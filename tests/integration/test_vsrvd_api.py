"""docs/api.yaml and vsrvd's route table (`vsrvd routes`) describe the
same API: every route is documented and every documented path and method
is a route.  Also that the document is OpenAPI 3 and every $ref in it
resolves."""
import os
import subprocess
import unittest

import yaml

from vsrvdtest import SRCDIR, VSRVD, main

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


class ApiDocTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(SRCDIR, "docs", "api.yaml")) as f:
            self.doc = yaml.safe_load(f)

    def test_routes_match(self):
        out = subprocess.run([VSRVD, "routes"], capture_output=True, text=True,
                             check=True).stdout
        routes = {tuple(line.split(" ", 1)) for line in out.splitlines()}
        documented = {(m.upper(), p) for p, ops in self.doc["paths"].items()
                      for m in ops if m in METHODS}
        self.assertEqual(sorted(routes - documented), [], "routes not in docs/api.yaml")
        self.assertEqual(sorted(documented - routes), [], "documented but not routes")
        self.assertGreater(len(routes), 20)

    def test_document(self):
        self.assertTrue(self.doc["openapi"].startswith("3."))

        def refs(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "$ref":
                        yield v
                    else:
                        yield from refs(v)
            elif isinstance(node, list):
                for v in node:
                    yield from refs(v)

        for ref in refs(self.doc):
            self.assertTrue(ref.startswith("#/"), ref)
            node = self.doc
            for part in ref[2:].split("/"):
                self.assertIn(part, node, ref)
                node = node[part]
        # Every operation answers something.
        for p, ops in self.doc["paths"].items():
            for m, op in ops.items():
                if m in METHODS:
                    self.assertIn("responses", op, (p, m))


if __name__ == "__main__":
    main()
