"""Print, as JSON, the test commands gevent's own runner would run.

Run with the compat venv's python and GEVENT_LOOP set: gevent's
known_failures.py decides per loop which files are ignored, expected to
fail, or must run alone, and some files expand into several commands.
We use gevent's runner only to *list* the commands (one per file,
combining disabled) so each file gets its own process and result.
"""
import json
import os
import sys


def main():
    from gevent.testing import testrunner
    from gevent.testing.resources import parse_resources, setup_resources
    from gevent.testing.resources import unparse_resources

    use = parse_resources(os.environ.get('GEVENTTEST_USE_RESOURCES'))
    os.environ['GEVENTTEST_USE_RESOURCES'] = unparse_resources(use)
    setup_resources(use)
    os.environ.setdefault('GEVENTTEST_QUIET', 'True')
    testrunner._setup_environ(debug=False)

    package = 'gevent.tests'
    config_path = testrunner._package_relative_filename('known_failures.py', package)
    config = {}
    with open(config_path) as f:
        exec(f.read(), config)  # gevent's own config file, as its runner does

    disc = testrunner.Discovery(
        [], ignored=config['IGNORED_TESTS'], package=package,
        config=config, allow_combine=False)
    commands = []
    for cmd, options in disc:
        commands.append({
            'cmd': list(cmd),
            'timeout': options.get('timeout'),
            'setenv': options.get('setenv') or {},
        })
    env = {k: v for k, v in os.environ.items()
           if k.startswith(('PYTHON', 'GEVENT'))}
    json.dump({
        'package_dir': testrunner._dir_from_package_name(package),
        'env': env,
        'commands': commands,
        'ignored': config['IGNORED_TESTS'],
        'failing': config['FAILING_TESTS'],
        'run_alone': config['RUN_ALONE'],
        'loop': '%s.%s' % (type(__import__('gevent').get_hub().loop).__module__,
                           type(__import__('gevent').get_hub().loop).__name__),
    }, sys.stdout, indent=1)


if __name__ == '__main__':
    main()
