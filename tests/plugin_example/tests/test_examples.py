from gradlint.testing import example_tests

# Every INVALID and VALID example of the package's rules, as one parametrized test.
test_examples = example_tests("XT")
