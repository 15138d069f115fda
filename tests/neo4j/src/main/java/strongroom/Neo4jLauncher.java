package strongroom;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

/**
 * Test-only Neo4j server for Strongroom's test suite.
 *
 * <p>Usage: {@code Neo4jLauncher PORT WORKDIR [PASSWORD_ENV_VAR]}. Starts the official in-process
 * harness with Bolt bound to 127.0.0.1:PORT (HTTP disabled), data under WORKDIR. Without a
 * password variable auth is off; with one, auth is on and user {@code neo4j} gets the password
 * read from that environment variable (never from the command line). Prints
 * {@code READY bolt://127.0.0.1:PORT} once Bolt accepts connections, then runs until standard
 * input closes or the process gets SIGTERM.
 */
public final class Neo4jLauncher {
    private Neo4jLauncher() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: Neo4jLauncher PORT WORKDIR [PASSWORD_ENV_VAR]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        Path workdir = Path.of(args[1]);
        String password = null;
        if (args.length == 3) {
            password = System.getenv(args[2]);
            if (password == null || password.isEmpty()) {
                System.err.println("error: environment variable " + args[2] + " is empty");
                System.exit(2);
            }
        }

        Neo4j neo4j = Neo4jBuilders.newInProcessBuilder(workdir)
                .withDisabledServer()
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .withConfig(GraphDatabaseSettings.auth_enabled, password != null)
                .withConfig(GraphDatabaseSettings.pagecache_memory, 128L * 1024 * 1024)
                .build();
        if (password != null) {
            neo4j.databaseManagementService().database("system").executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $p CHANGE NOT REQUIRED", Map.of("p", password));
        }

        AtomicBoolean closed = new AtomicBoolean(false);
        Runnable stop = () -> {
            if (closed.compareAndSet(false, true)) {
                neo4j.close();
            }
        };
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "neo4j-launcher-stop"));

        System.out.println("READY bolt://127.0.0.1:" + port);
        System.out.flush();

        InputStream in = System.in;
        byte[] buf = new byte[256];
        while (in.read(buf) >= 0) {
            // keep running until the parent closes our stdin
        }
        stop.run();
        System.exit(0);
    }
}
