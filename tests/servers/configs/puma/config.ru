# The Rack app of the puma recipe. It names the instance that answers (its
# process group: the pid baton started). GET /hold answers only once a file
# named "release" exists in the working directory (at most 10 s), to keep a
# request in flight across a drain.
run lambda { |env|
  if env["PATH_INFO"] == "/hold"
    1000.times do
      break if File.exist?("release")
      sleep 0.01
    end
  end
  body = "served by pid #{Process.getpgrp}\n"
  [200, { "Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s }, [body]]
}
